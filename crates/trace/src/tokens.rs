//! Splits one iptables-save line into words the way iptables' own parser does: double quotes group words,
//! a backslash escapes the next character inside quotes. No interpretation of the words here.

/// Splits `line` into words. Returns an error message for an unterminated quote.
pub(crate) fn split(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut in_quotes = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                in_quotes = !in_quotes;
                in_word = true;
            }
            '\\' if in_quotes => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            c if c.is_whitespace() && !in_quotes => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_quotes {
        return Err("unterminated quote".to_string());
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::split;

    #[test]
    fn quotes_group_words_and_escapes_work() {
        assert_eq!(
            split(r#"-A X -m comment --comment "a b \"c\"" -j Y"#).unwrap(),
            vec![
                "-A",
                "X",
                "-m",
                "comment",
                "--comment",
                "a b \"c\"",
                "-j",
                "Y"
            ]
        );
        assert_eq!(split(r#"--comment """#).unwrap(), vec!["--comment", ""]);
        assert!(split(r#"-m comment --comment "open"#).is_err());
    }
}
