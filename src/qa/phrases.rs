//! Forbidden phrases (服务禁语, R28): which of the configured phrases occur in a text,
//! and where. Pure. The text is only read: a hit is flagged for QA, never corrected,
//! because what the agent wrote is the record.
//!
//! Whitespace is ignored on both sides, so "不 行" or a phrase broken across a line
//! still counts; punctuation is not, so "不，行" is not "不行". A phrase inside a
//! longer expression ("行不行") is reported too: QA decides, the checker only points.

/// One occurrence of a forbidden phrase.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PhraseHit {
    /// The phrase as configured.
    pub phrase: String,
    /// Where it starts, in characters (not bytes) from the start of the text.
    pub char_offset: usize,
}

/// The configured phrase list, ready to check texts against.
#[derive(Clone, Debug)]
pub struct PhraseChecker {
    /// Each phrase as configured, with its characters less whitespace.
    phrases: Vec<(String, Vec<char>)>,
}

impl PhraseChecker {
    /// Phrases that are empty once whitespace is removed are ignored: they would
    /// match everywhere.
    pub fn new<S: AsRef<str>>(phrases: impl IntoIterator<Item = S>) -> Self {
        let phrases = phrases
            .into_iter()
            .map(|p| {
                let p = p.as_ref();
                (
                    p.to_owned(),
                    p.chars().filter(|c| !c.is_whitespace()).collect(),
                )
            })
            .filter(|(_, chars): &(String, Vec<char>)| !chars.is_empty())
            .collect();
        PhraseChecker { phrases }
    }

    /// Every occurrence of every phrase in `text`, ordered by position, then by the
    /// phrase's place in the list. Overlapping occurrences are all reported.
    pub fn check(&self, text: &str) -> Vec<PhraseHit> {
        // The text's non-whitespace characters, each with its index in the original.
        let compact: Vec<(usize, char)> = text
            .chars()
            .enumerate()
            .filter(|(_, c)| !c.is_whitespace())
            .collect();
        let mut hits = Vec::new();
        for (phrase, chars) in &self.phrases {
            if chars.len() > compact.len() {
                continue;
            }
            for start in 0..=compact.len() - chars.len() {
                let window = &compact[start..start + chars.len()];
                if window.iter().map(|(_, c)| c).eq(chars.iter()) {
                    hits.push(PhraseHit {
                        phrase: phrase.clone(),
                        char_offset: window[0].0,
                    });
                }
            }
        }
        let order = |phrase: &str| self.phrases.iter().position(|(p, _)| p == phrase);
        hits.sort_by_key(|h| (h.char_offset, order(&h.phrase)));
        hits
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::qa::SEED_FORBIDDEN_PHRASES;

    fn seed() -> PhraseChecker {
        PhraseChecker::new(SEED_FORBIDDEN_PHRASES)
    }

    fn phrases(hits: &[PhraseHit]) -> Vec<&str> {
        hits.iter().map(|h| h.phrase.as_str()).collect()
    }

    #[test]
    fn courteous_answer_has_no_hits_r28() {
        let text = "您好，您反映的小区供暖问题已记录，我们会在一个工作日内转交供热公司处理，请您保持电话畅通。";
        assert!(seed().check(text).is_empty());
    }

    #[test]
    fn finds_each_seed_phrase_with_its_character_offset_r28() {
        let text = "这个不行，我也不知道，爱找谁找谁。";
        let hits = seed().check(text);
        assert_eq!(phrases(&hits), ["不行", "不知道", "爱找谁找谁"]);
        assert_eq!(hits[0].char_offset, 2);
        assert_eq!(hits[1].char_offset, 7);
        assert_eq!(hits[2].char_offset, 11);
        let chars: Vec<char> = text.chars().collect();
        for hit in &hits {
            let at: String = chars[hit.char_offset..]
                .iter()
                .take(hit.phrase.chars().count())
                .collect();
            assert_eq!(at, hit.phrase);
        }
    }

    #[test]
    fn every_seed_phrase_is_found_in_a_sentence() {
        for phrase in SEED_FORBIDDEN_PHRASES {
            let text = format!("坐席回复：{phrase}！");
            let hits = seed().check(&text);
            assert!(
                hits.iter()
                    .any(|h| h.phrase == *phrase && h.char_offset == 5),
                "{phrase}: {hits:?}"
            );
        }
    }

    #[test]
    fn repeated_and_overlapping_phrases_are_all_reported() {
        let hits = seed().check("不行不行，解决不了就是解决不了");
        assert_eq!(phrases(&hits), ["不行", "不行", "解决不了", "解决不了"]);
        assert_eq!(
            hits.iter().map(|h| h.char_offset).collect::<Vec<_>>(),
            [0, 2, 5, 11]
        );
        // "这就是规定" and "这就是最终办理结果" share a prefix: each counts on its own.
        let hits = seed().check("这就是规定，这就是最终办理结果");
        assert_eq!(phrases(&hits), ["这就是规定", "这就是最终办理结果"]);
    }

    #[test]
    fn whitespace_inside_a_phrase_does_not_hide_it() {
        let hits = seed().check("我 不 知\n道");
        assert_eq!(phrases(&hits), ["不知道"]);
        assert_eq!(hits[0].char_offset, 2);
        // Punctuation does break a phrase: "不，行" says something else.
        assert!(seed().check("不，行").is_empty());
    }

    #[test]
    fn configured_list_replaces_the_seed_and_ignores_blank_phrases() {
        let checker = PhraseChecker::new(["没空", "  "]);
        assert_eq!(phrases(&checker.check("今天没空，不行")), ["没空"]);
        assert!(
            PhraseChecker::new(Vec::<String>::new())
                .check("不行")
                .is_empty()
        );
    }

    #[test]
    fn text_shorter_than_a_phrase_and_mixed_scripts_are_safe() {
        assert!(seed().check("").is_empty());
        assert!(seed().check("不").is_empty());
        let hits = seed().check("OK, 不行 (no)");
        assert_eq!(hits[0].char_offset, 4);
    }
}
