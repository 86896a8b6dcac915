//! Reading knowledge-base entries and service-directory providers from JSON or CSV
//! (R13), for [`super::WorkOrderStore::import_knowledge`] and
//! [`super::WorkOrderStore::import_providers`]. Pure apart from [`read_knowledge`] and
//! [`read_providers`], which read one file.
//!
//! JSON: an array of objects with the fields of [`KnowledgeEntry`] or [`Provider`];
//! an unknown field is refused. CSV: a header row naming columns among those fields
//! (an unknown column is refused, the required ones must be there), then one row per
//! entry; `tags` is one cell with tags separated by `;`. Either way, one bad record
//! refuses the whole file, with its line, so nothing is half imported.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use super::matter::{KnowledgeEntry, Provider};

/// The file formats accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportFormat {
    Json,
    Csv,
}

impl ImportFormat {
    /// From the file name's extension (`.json`, `.csv`).
    pub fn from_path(path: &Path) -> Option<Self> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "json" => Some(ImportFormat::Json),
            "csv" => Some(ImportFormat::Csv),
            _ => None,
        }
    }
}

/// Why a file could not be imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: the extension says neither .json nor .csv")]
    UnknownFormat { path: PathBuf },
    /// A record or the header is malformed; `line` is 1-based.
    #[error("{path}:{line}: {reason}")]
    Bad {
        path: PathBuf,
        line: usize,
        reason: String,
    },
}

/// A parse failure before the file name is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseFailure {
    pub line: usize,
    pub reason: String,
}

const KNOWLEDGE_COLUMNS: &[&str] = &["id", "title", "body", "tags"];
const KNOWLEDGE_REQUIRED: &[&str] = &["id", "title", "body"];
const PROVIDER_COLUMNS: &[&str] = &["id", "name", "services", "area", "phone", "address", "tags"];
const PROVIDER_REQUIRED: &[&str] = &["id", "name", "services"];

pub fn parse_knowledge(
    text: &str,
    format: ImportFormat,
) -> Result<Vec<KnowledgeEntry>, ParseFailure> {
    match format {
        ImportFormat::Json => parse_json(text),
        ImportFormat::Csv => parse_csv(text, KNOWLEDGE_COLUMNS, KNOWLEDGE_REQUIRED, |cell| {
            Ok(KnowledgeEntry {
                id: cell("id"),
                title: cell("title"),
                body: cell("body"),
                tags: split_tags(&cell("tags")),
            })
        }),
    }
}

pub fn parse_providers(text: &str, format: ImportFormat) -> Result<Vec<Provider>, ParseFailure> {
    match format {
        ImportFormat::Json => parse_json(text),
        ImportFormat::Csv => parse_csv(text, PROVIDER_COLUMNS, PROVIDER_REQUIRED, |cell| {
            Ok(Provider {
                id: cell("id"),
                name: cell("name"),
                services: cell("services"),
                area: cell("area"),
                phone: cell("phone"),
                address: cell("address"),
                tags: split_tags(&cell("tags")),
                added_from: None,
            })
        }),
    }
}

/// Reads and parses a knowledge-base file, the format from its extension.
pub fn read_knowledge(path: &Path) -> Result<Vec<KnowledgeEntry>, ImportError> {
    read_file(path, parse_knowledge)
}

/// Reads and parses a service-directory file, the format from its extension.
pub fn read_providers(path: &Path) -> Result<Vec<Provider>, ImportError> {
    read_file(path, parse_providers)
}

fn read_file<T>(
    path: &Path,
    parse: fn(&str, ImportFormat) -> Result<Vec<T>, ParseFailure>,
) -> Result<Vec<T>, ImportError> {
    let format = ImportFormat::from_path(path).ok_or_else(|| ImportError::UnknownFormat {
        path: path.to_owned(),
    })?;
    let text = std::fs::read_to_string(path).map_err(|source| ImportError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&text, format).map_err(|f| ImportError::Bad {
        path: path.to_owned(),
        line: f.line,
        reason: f.reason,
    })
}

fn split_tags(cell: &str) -> Vec<String> {
    cell.split(';')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}

fn parse_json<T: DeserializeOwned>(text: &str) -> Result<Vec<T>, ParseFailure> {
    serde_json::from_str(text).map_err(|e| ParseFailure {
        line: e.line(),
        reason: e.to_string(),
    })
}

fn parse_csv<T>(
    text: &str,
    columns: &[&str],
    required: &[&str],
    build: impl Fn(&dyn Fn(&str) -> String) -> Result<T, String>,
) -> Result<Vec<T>, ParseFailure> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let header_failure = |reason: String| ParseFailure { line: 1, reason };
    let headers = reader
        .headers()
        .map_err(|e| header_failure(e.to_string()))?
        .clone();
    for name in headers.iter() {
        if !columns.contains(&name) {
            return Err(header_failure(format!(
                "unknown column {name:?}; expected some of {columns:?}"
            )));
        }
    }
    for name in required {
        if !headers.iter().any(|h| h == *name) {
            return Err(header_failure(format!("missing column {name:?}")));
        }
    }
    let mut out = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| ParseFailure {
            line: e.position().map_or(0, |p| p.line() as usize),
            reason: e.to_string(),
        })?;
        let line = record.position().map_or(0, |p| p.line() as usize);
        let cell = |name: &str| -> String {
            headers
                .iter()
                .position(|h| h == name)
                .and_then(|i| record.get(i))
                .unwrap_or("")
                .to_owned()
        };
        for name in required {
            if cell(name).is_empty() {
                return Err(ParseFailure {
                    line,
                    reason: format!("empty {name:?}"),
                });
            }
        }
        out.push(build(&cell).map_err(|reason| ParseFailure { line, reason })?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_with_chinese_text_and_tags_r13() {
        let text = "id,title,body,tags\n\
                    kb-1,社保卡补办,携带身份证到社保经办网点办理,社保; 补办\n";
        let entries = parse_knowledge(text, ImportFormat::Csv).expect("parse");
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].title, "社保卡补办");
        assert_eq!(entries[0].tags, vec!["社保", "补办"]);
    }

    #[test]
    fn an_unknown_csv_column_is_refused() {
        let text = "id,title,body,colour\nkb-1,a,b,red\n";
        let failure = parse_knowledge(text, ImportFormat::Csv).unwrap_err();
        assert_eq!(failure.line, 1);
        assert!(failure.reason.contains("colour"), "{}", failure.reason);
    }

    #[test]
    fn a_missing_required_cell_names_its_line() {
        let text = "id,name,services\np-1,某某开锁,开锁换锁\np-2,,家政保洁\n";
        let failure = parse_providers(text, ImportFormat::Csv).unwrap_err();
        assert_eq!(failure.line, 3);
        assert!(failure.reason.contains("name"), "{}", failure.reason);
    }

    #[test]
    fn an_unknown_json_field_is_refused_with_its_line() {
        let text = "[\n{\"id\":\"kb-1\",\"title\":\"a\",\"body\":\"b\"},\n\
                    {\"id\":\"kb-2\",\"title\":\"a\",\"body\":\"b\",\"colour\":\"red\"}\n]";
        let failure = parse_knowledge(text, ImportFormat::Json).unwrap_err();
        assert_eq!(failure.line, 3);
        assert!(failure.reason.contains("colour"), "{}", failure.reason);
    }

    #[test]
    fn the_shipped_examples_parse_r13() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
        let knowledge = read_knowledge(&root.join("knowledge.json")).expect("knowledge.json");
        assert!(knowledge.len() >= 24, "{} entries", knowledge.len());
        let providers = read_providers(&root.join("providers.csv")).expect("providers.csv");
        assert!(providers.len() >= 24, "{} providers", providers.len());
    }
}
