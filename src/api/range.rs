//! HTTP `Range` requests (RFC 9110 §14) for recording downloads: which bytes of a file
//! of a known size a request asks for. Pure.
//!
//! One range per request (`bytes=0-99`, `bytes=100-`, `bytes=-500`); that is what
//! audio players and `curl -r` send. A header this does not serve (another unit,
//! several ranges, a malformed spec) is ignored and the whole file is sent, as the RFC
//! allows; a well-formed range that starts beyond the file is unsatisfiable (416).

/// What to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ByteRange {
    /// The whole file: `200 OK`.
    Whole,
    /// Bytes `first..=last`: `206 Partial Content`.
    Part { first: u64, last: u64 },
    /// Nothing of the file matches: `416 Range Not Satisfiable`.
    Unsatisfiable,
}

impl ByteRange {
    /// Reads a `Range` header value against a file of `size` bytes.
    pub fn parse(header: Option<&str>, size: u64) -> ByteRange {
        let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
            return ByteRange::Whole;
        };
        let spec = spec.trim();
        if spec.contains(',') {
            return ByteRange::Whole;
        }
        let Some((first, last)) = spec.split_once('-') else {
            return ByteRange::Whole;
        };
        let number = |s: &str| {
            let s = s.trim();
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                None
            } else {
                s.parse::<u64>().ok()
            }
        };
        match (first.trim().is_empty(), number(first), number(last)) {
            // bytes=-N: the last N bytes.
            (true, _, Some(suffix)) => {
                if suffix == 0 || size == 0 {
                    ByteRange::Unsatisfiable
                } else {
                    ByteRange::Part {
                        first: size.saturating_sub(suffix),
                        last: size - 1,
                    }
                }
            }
            (false, Some(first), last_given) => {
                if !last.trim().is_empty() && last_given.is_none() {
                    return ByteRange::Whole;
                }
                if last_given.is_some_and(|last| last < first) {
                    return ByteRange::Whole;
                }
                if first >= size {
                    return ByteRange::Unsatisfiable;
                }
                let last = last_given.map_or(size - 1, |last| last.min(size - 1));
                ByteRange::Part { first, last }
            }
            _ => ByteRange::Whole,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ByteRange::{self, *};

    fn parse(h: &str, size: u64) -> ByteRange {
        ByteRange::parse(Some(h), size)
    }

    #[test]
    fn no_header_is_the_whole_file() {
        assert_eq!(ByteRange::parse(None, 100), Whole);
    }

    #[test]
    fn closed_open_and_suffix_ranges() {
        assert_eq!(parse("bytes=0-99", 1000), Part { first: 0, last: 99 });
        assert_eq!(
            parse("bytes=44-", 1000),
            Part {
                first: 44,
                last: 999
            }
        );
        assert_eq!(
            parse("bytes=-10", 1000),
            Part {
                first: 990,
                last: 999
            }
        );
        assert_eq!(parse("bytes=5-5", 1000), Part { first: 5, last: 5 });
    }

    #[test]
    fn ranges_past_the_end_are_cut_to_the_file() {
        assert_eq!(
            parse("bytes=900-5000", 1000),
            Part {
                first: 900,
                last: 999
            }
        );
        assert_eq!(
            parse("bytes=-5000", 1000),
            Part {
                first: 0,
                last: 999
            }
        );
    }

    #[test]
    fn ranges_starting_beyond_the_file_are_unsatisfiable() {
        assert_eq!(parse("bytes=1000-", 1000), Unsatisfiable);
        assert_eq!(parse("bytes=1000-2000", 1000), Unsatisfiable);
        assert_eq!(parse("bytes=-0", 1000), Unsatisfiable);
        assert_eq!(parse("bytes=0-", 0), Unsatisfiable);
        assert_eq!(parse("bytes=-1", 0), Unsatisfiable);
    }

    #[test]
    fn what_is_not_served_is_ignored() {
        for header in [
            "bytes=0-1,5-6",
            "items=0-5",
            "bytes=abc",
            "bytes=5-1",
            "bytes=-",
            "bytes=1-x",
            "bytes=+1-2",
            "bytes=99999999999999999999999-",
        ] {
            assert_eq!(parse(header, 1000), Whole, "{header}");
        }
    }
}
