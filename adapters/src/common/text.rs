//! Short texts for messages: answers and error chains are cut to a length that logs, outbox rows
//! and operator screens can hold.

/// Shorten an answer or error text to at most `max` characters, marking the cut.
pub fn excerpt(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_string(),
        Some((cut, _)) => format!("{}…(+{} bytes)", &text[..cut], text.len() - cut),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpt_keeps_short_text_and_marks_a_cut() {
        assert_eq!(excerpt("短文本", 10), "短文本");
        assert_eq!(excerpt("一二三四五", 2), "一二…(+9 bytes)");
    }
}
