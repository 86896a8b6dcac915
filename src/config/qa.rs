//! `[qa]`: quality assurance: how many of each agent's calls are sampled for review
//! (R23), and the forbidden phrases looked for in what agents write (R28). Pure
//! (validation only).

use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, Validator};

/// The service standard's forbidden phrases (服务禁语, seed §6.6), the default list.
pub const SEED_FORBIDDEN_PHRASES: &[&str] = &[
    "不行",
    "不知道",
    "不能办",
    "解决不了",
    "等一会儿",
    "着急也没有用",
    "爱找谁找谁",
    "有意见你告我去",
    "怎么还不明白",
    "这就是规定",
    "这就是最终办理结果",
    "我说话你听不懂么",
];

/// The validated `[qa]` section.
#[derive(Clone, Debug, PartialEq)]
pub struct QaConfig {
    /// Share of each agent's calls per day picked for review, in basis points
    /// (1/100 of a percent): 500 is 5 %.
    pub sample_basis_points: u32,
    /// The hotline's day starts at local midnight: UTC plus this many hours.
    pub day_utc_offset_hours: i32,
    /// Looked for, as written, in agents' texts on work orders.
    pub forbidden_phrases: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawQa {
    #[serde(default = "default_sample_percent")]
    sample_percent: Spanned<f64>,
    #[serde(default = "default_day_offset")]
    day_utc_offset_hours: Spanned<i64>,
    forbidden_phrases: Option<Spanned<Vec<String>>>,
}

impl Default for RawQa {
    fn default() -> Self {
        RawQa {
            sample_percent: default_sample_percent(),
            day_utc_offset_hours: default_day_offset(),
            forbidden_phrases: None,
        }
    }
}

fn default_sample_percent() -> Spanned<f64> {
    Spanned::new(0..0, 5.0)
}

/// China Standard Time.
fn default_day_offset() -> Spanned<i64> {
    Spanned::new(0..0, 8)
}

pub(super) fn validate(v: &Validator<'_>, raw: &RawQa) -> Result<QaConfig, ConfigError> {
    let percent = *raw.sample_percent.get_ref();
    if !(0.0..=100.0).contains(&percent) {
        return Err(v.invalid(
            raw.sample_percent.span(),
            "qa.sample_percent",
            format!("{percent} is outside 0..=100"),
        ));
    }
    let offset = *raw.day_utc_offset_hours.get_ref();
    if !(-12..=14).contains(&offset) {
        return Err(v.invalid(
            raw.day_utc_offset_hours.span(),
            "qa.day_utc_offset_hours",
            format!("{offset} is outside -12..=14"),
        ));
    }
    let forbidden_phrases = match &raw.forbidden_phrases {
        None => SEED_FORBIDDEN_PHRASES
            .iter()
            .map(|p| (*p).to_owned())
            .collect(),
        Some(list) => {
            let mut phrases = Vec::new();
            for phrase in list.get_ref() {
                let phrase = phrase.trim();
                if phrase.is_empty() {
                    return Err(v.invalid(
                        list.span(),
                        "qa.forbidden_phrases",
                        "an empty phrase would match every text",
                    ));
                }
                if !phrases.iter().any(|p| p == phrase) {
                    phrases.push(phrase.to_owned());
                }
            }
            phrases
        }
    };
    Ok(QaConfig {
        sample_basis_points: (percent * 100.0).round() as u32,
        day_utc_offset_hours: offset as i32,
        forbidden_phrases,
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::{Config, ConfigError};

    use super::*;

    const SHIPPED: &str = include_str!("../../config/hotline.toml");

    fn with_qa(section: &str) -> Result<Config, ConfigError> {
        let mut out = String::new();
        let mut skipping = false;
        for line in SHIPPED.lines() {
            if line.starts_with('[') {
                skipping = line == "[qa]";
            }
            if !skipping {
                out.push_str(line);
                out.push('\n');
            }
        }
        out.push_str(section);
        Config::parse(Path::new("test.toml"), &out)
    }

    #[test]
    fn defaults_are_five_percent_china_time_and_the_seed_list() {
        let cfg = with_qa("").expect("config without [qa]");
        assert_eq!(cfg.qa.sample_basis_points, 500);
        assert_eq!(cfg.qa.day_utc_offset_hours, 8);
        assert_eq!(cfg.qa.forbidden_phrases.len(), SEED_FORBIDDEN_PHRASES.len());
        assert!(cfg.qa.forbidden_phrases.iter().any(|p| p == "爱找谁找谁"));
    }

    #[test]
    fn shipped_config_lists_the_seed_phrases() {
        let cfg = Config::parse(Path::new("hotline.toml"), SHIPPED).expect("shipped");
        let seed: Vec<String> = SEED_FORBIDDEN_PHRASES
            .iter()
            .map(|p| (*p).to_owned())
            .collect();
        assert_eq!(cfg.qa.forbidden_phrases, seed);
    }

    #[test]
    fn phrases_are_configurable_and_empty_ones_refused() {
        let cfg = with_qa("[qa]\nforbidden_phrases = [\"没空\", \"没空\", \" 找别人 \"]\n")
            .expect("custom list");
        assert_eq!(cfg.qa.forbidden_phrases, ["没空", "找别人"]);
        let err = with_qa("[qa]\nforbidden_phrases = [\"\"]\n").unwrap_err();
        assert!(
            matches!(
                err,
                ConfigError::Invalid {
                    key: "qa.forbidden_phrases",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn share_outside_a_percentage_is_refused() {
        assert!(with_qa("[qa]\nsample_percent = 100.5\n").is_err());
        assert!(with_qa("[qa]\nsample_percent = -1.0\n").is_err());
        let cfg = with_qa("[qa]\nsample_percent = 2.5\n").expect("2.5 %");
        assert_eq!(cfg.qa.sample_basis_points, 250);
    }
}
