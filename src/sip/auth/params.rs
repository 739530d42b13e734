//! The grammar challenges and credentials share (RFC 3261 §25.1, RFC 7616 §3.3–3.4):
//! `"Digest" LWS auth-param *(COMMA auth-param)`, `auth-param = token EQUAL (token /
//! quoted-string)`, and printing values back as quoted-strings.
//!
//! The parser expects an unfolded header value: whitespace is SP or HTAB, and a CR or LF
//! anywhere is refused. Every value may be a token or a quoted-string, whatever the parameter
//! (some devices quote `algorithm` or `qop`); the callers check the content.

use std::fmt::{self, Write as _};

use super::AuthError;

/// Longest header value accepted, in bytes.
pub(super) const MAX_HEADER_LEN: usize = 8 * 1024;

/// Most parameters accepted in one header value, unknown ones included.
pub(super) const MAX_PARAMS: usize = 32;

/// The parameters of one `Digest` header value, names as written, values unescaped.
#[derive(Debug)]
pub(super) struct DigestParams<'a> {
    params: Vec<(&'a str, String)>,
}

impl<'a> DigestParams<'a> {
    /// Parses `Digest name=value, …`.
    ///
    /// # Errors
    /// `UnsupportedScheme` for a scheme other than `Digest`; `Malformed` for anything that
    /// breaks the grammar, an empty value, a duplicate name, more than [`MAX_PARAMS`]
    /// parameters or more than [`MAX_HEADER_LEN`] bytes.
    pub(super) fn parse(value: &'a str) -> Result<Self, AuthError> {
        if value.len() > MAX_HEADER_LEN {
            return Err(malformed("header value longer than 8 KiB"));
        }
        let mut cursor = Cursor {
            text: value,
            pos: 0,
        };
        cursor.skip_whitespace();
        let scheme = cursor.token();
        if scheme.is_empty() {
            return Err(malformed("missing authentication scheme"));
        }
        if !scheme.eq_ignore_ascii_case("Digest") {
            return Err(AuthError::UnsupportedScheme {
                scheme: scheme.to_owned(),
            });
        }
        let had_whitespace = cursor.skip_whitespace();
        if cursor.at_end() {
            return Err(malformed("no parameters after the scheme"));
        }
        if !had_whitespace {
            return Err(malformed("expected whitespace after the scheme"));
        }
        let mut params: Vec<(&'a str, String)> = Vec::new();
        loop {
            if params.len() == MAX_PARAMS {
                return Err(malformed("more than 32 parameters"));
            }
            let (name, value) = cursor.param()?;
            if params
                .iter()
                .any(|(seen, _)| seen.eq_ignore_ascii_case(name))
            {
                return Err(malformed("duplicate parameter"));
            }
            params.push((name, value));
            cursor.skip_whitespace();
            if cursor.at_end() {
                return Ok(Self { params });
            }
            if !cursor.eat(b',') {
                return Err(malformed("expected ',' between parameters"));
            }
            cursor.skip_whitespace();
            if cursor.at_end() {
                return Err(malformed("trailing ',' after the last parameter"));
            }
        }
    }

    /// The value of parameter `name` (case-insensitive), if present.
    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(candidate, _)| candidate.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The value of parameter `name`, or `Malformed { reason: missing }`.
    pub(super) fn require(&self, name: &str, missing: &'static str) -> Result<&str, AuthError> {
        self.get(name).ok_or(malformed(missing))
    }
}

/// Writes `value` as a quoted-string, escaping `"` and `\`.
///
/// The value must hold no control character but HTAB: the parser never produces one and the
/// constructors of printable types refuse them, because no quoted-string can carry a CR or LF.
pub(super) fn write_quoted(f: &mut fmt::Formatter<'_>, value: &str) -> fmt::Result {
    f.write_char('"')?;
    for ch in value.chars() {
        if ch == '"' || ch == '\\' {
            f.write_char('\\')?;
        }
        f.write_char(ch)?;
    }
    f.write_char('"')
}

/// Whether `value` holds a character that [`write_quoted`] cannot print.
pub(super) fn has_control_character(value: &str) -> bool {
    value.chars().any(is_forbidden_control)
}

pub(super) fn malformed(reason: &'static str) -> AuthError {
    AuthError::Malformed { reason }
}

struct Cursor<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn at_end(&self) -> bool {
        self.pos == self.text.len()
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn eat(&mut self, byte: u8) -> bool {
        let found = self.peek() == Some(byte);
        if found {
            self.pos += 1;
        }
        found
    }

    /// Skips SP and HTAB; tells whether there were any.
    fn skip_whitespace(&mut self) -> bool {
        let start = self.pos;
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
        self.pos > start
    }

    /// The longest run of token characters here, possibly empty. Token characters are ASCII,
    /// so the slice ends on a character boundary.
    fn token(&mut self) -> &'a str {
        let start = self.pos;
        while self.peek().is_some_and(is_token_byte) {
            self.pos += 1;
        }
        &self.text[start..self.pos]
    }

    /// `token LWS? "=" LWS? (token / quoted-string)`.
    fn param(&mut self) -> Result<(&'a str, String), AuthError> {
        let name = self.token();
        if name.is_empty() {
            return Err(malformed("expected a parameter name"));
        }
        self.skip_whitespace();
        if !self.eat(b'=') {
            return Err(malformed("expected '=' after a parameter name"));
        }
        self.skip_whitespace();
        if self.peek() == Some(b'"') {
            return Ok((name, self.quoted_string()?));
        }
        let value = self.token();
        if value.is_empty() {
            return Err(malformed("empty or invalid parameter value"));
        }
        Ok((name, value.to_owned()))
    }

    /// A quoted-string starting at the opening quote, unescaped.
    fn quoted_string(&mut self) -> Result<String, AuthError> {
        self.pos += 1;
        let mut value = String::new();
        let mut chars = self.text[self.pos..].char_indices();
        while let Some((offset, ch)) = chars.next() {
            match ch {
                '"' => {
                    self.pos += offset + 1;
                    return Ok(value);
                }
                '\\' => match chars.next() {
                    Some((_, escaped)) if escaped.is_ascii() && !is_forbidden_control(escaped) => {
                        value.push(escaped);
                    }
                    Some(_) => return Err(malformed("invalid escape in a quoted-string")),
                    None => break,
                },
                ch if is_forbidden_control(ch) => {
                    return Err(malformed("control character in a quoted-string"));
                }
                ch => value.push(ch),
            }
        }
        Err(malformed("unterminated quoted-string"))
    }
}

/// RFC 3261 `token` characters.
fn is_token_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&byte)
}

fn is_forbidden_control(ch: char) -> bool {
    ch.is_ascii_control() && ch != '\t'
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(value: &str) -> Result<Vec<(String, String)>, AuthError> {
        DigestParams::parse(value).map(|p| {
            p.params
                .into_iter()
                .map(|(name, value)| (name.to_owned(), value))
                .collect()
        })
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn tokens_and_quoted_strings_with_whitespace_around_equals_and_commas() {
        let parsed = parse("  digest a = b ,c=\"d, e\"\t,\tf=\"\"  ").unwrap();
        assert_eq!(parsed, pairs(&[("a", "b"), ("c", "d, e"), ("f", "")]));
    }

    #[test]
    fn escapes_in_quoted_strings_are_removed() {
        let parsed = parse(r#"Digest a="x\"y\\z\q""#).unwrap();
        assert_eq!(parsed, pairs(&[("a", r#"x"y\zq"#)]));
    }

    #[test]
    fn non_ascii_text_is_kept_in_quoted_strings() {
        let parsed = parse("Digest username=\"Jürgen ☎\"").unwrap();
        assert_eq!(parsed, pairs(&[("username", "Jürgen ☎")]));
    }

    #[test]
    fn lookup_ignores_the_case_of_names() {
        let params = DigestParams::parse("Digest ReAlm=\"x\"").unwrap();
        assert_eq!(params.get("realm"), Some("x"));
        assert_eq!(params.get("REALM"), Some("x"));
        assert_eq!(params.get("nonce"), None);
    }

    #[test]
    fn other_schemes_are_unsupported_not_malformed() {
        assert_eq!(
            parse("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ"),
            Err(AuthError::UnsupportedScheme {
                scheme: "Basic".into()
            })
        );
    }

    #[test]
    fn grammar_violations_are_malformed() {
        let cases = [
            "",
            "   ",
            "Digest",
            "Digest ",
            "Digest\"a\"",
            "Digest a",
            "Digest a=",
            "Digest a=,b=c",
            "Digest =b",
            "Digest a=b c=d",
            "Digest a=b,",
            "Digest a=b,,c=d",
            "Digest , a=b",
            "Digest a=\"b",
            "Digest a=\"b\\",
            "Digest a=\"b\\\"",
            "Digest a=\"b\"c",
            "Digest a=\"b\r\nc\"",
            "Digest a=\"b\\\rc\"",
            "Digest a=\"b\u{0}\"",
            "Digest a=b\r\n, c=d",
            "Digest a=b/c",
            "Digest a=b, A=c",
        ];
        for case in cases {
            assert!(
                matches!(parse(case), Err(AuthError::Malformed { .. })),
                "{case:?} should be malformed, got {:?}",
                parse(case)
            );
        }
    }

    #[test]
    fn thirty_two_parameters_pass_and_thirty_three_do_not() {
        let list = |n: usize| {
            let params: Vec<String> = (0..n).map(|i| format!("p{i}=v")).collect();
            format!("Digest {}", params.join(", "))
        };
        assert_eq!(parse(&list(MAX_PARAMS)).unwrap().len(), MAX_PARAMS);
        assert_eq!(
            parse(&list(MAX_PARAMS + 1)),
            Err(malformed("more than 32 parameters"))
        );
    }

    #[test]
    fn values_longer_than_8_kib_are_malformed() {
        let at_limit = format!("Digest a=\"{}\"", "x".repeat(MAX_HEADER_LEN - 11));
        assert_eq!(at_limit.len(), MAX_HEADER_LEN);
        assert!(parse(&at_limit).is_ok());
        let over = format!("Digest a=\"{}\"", "x".repeat(MAX_HEADER_LEN - 10));
        assert_eq!(
            parse(&over),
            Err(malformed("header value longer than 8 KiB"))
        );
    }

    #[test]
    fn control_characters_are_detected_for_printing() {
        assert!(has_control_character("a\r\nb"));
        assert!(has_control_character("a\u{7f}"));
        assert!(!has_control_character("a\tb é"));
    }
}
