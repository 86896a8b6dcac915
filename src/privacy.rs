//! Masking of caller numbers (R12). A full number lives only in the work order store;
//! everything printed, logged or exported goes through [`mask_number`].

/// Keeps the first three and the last two digits of a number, masking the rest,
/// so staff can still tell calls apart without learning who called.
///
/// Short numbers are masked all but their last digit; an empty number stays empty.
pub fn mask_number(number: &str) -> String {
    let chars: Vec<char> = number.chars().collect();
    let n = chars.len();
    let (keep_head, keep_tail) = match n {
        0 => return String::new(),
        1..=4 => (0, 1),
        5..=7 => (1, 2),
        _ => (3, 2),
    };
    chars
        .iter()
        .enumerate()
        .map(|(i, c)| {
            if i < keep_head || i >= n - keep_tail {
                *c
            } else {
                '*'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::mask_number;

    #[test]
    fn masks_mobile_numbers_keeping_prefix_and_last_two() {
        assert_eq!(mask_number("13812345678"), "138******78");
    }

    #[test]
    fn masks_short_numbers_almost_entirely() {
        assert_eq!(mask_number("8890"), "***0");
        assert_eq!(mask_number("12345"), "1**45");
        assert_eq!(mask_number(""), "");
    }

    #[test]
    fn never_returns_the_full_number_for_realistic_lengths() {
        for n in ["02412345678", "+8613812345678", "1001", "024123"] {
            assert_ne!(mask_number(n), n);
        }
    }
}
