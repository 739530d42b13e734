//! The lenient JSON bodies of the legacy API (spec §4.1.5, §4.1.6).
//!
//! FSGui's server matched keys without regard to case (`Filepath` and `FilePath` both
//! work) and its examples send booleans and numbers as strings (`"Loopplay":"true"`,
//! `"Limit":0`, `"Member_id":"3"`). [`LegacyBody`] keeps the object as sent; its getters
//! look a key up exactly first, then ignoring case, and accept either form of a value.
//! Unknown fields are ignored. A value of the wrong type is refused with the field named.
//! An empty body is an empty object (some integrations POST to the GET endpoints).
//!
//! What this module does not do: limit the body's size (the router's body limit does: 413),
//! or know which fields an endpoint needs (the handlers do).

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use serde_json::{Map, Value};

use super::error::ApiError;

/// A JSON object body, read leniently.
#[derive(Debug, Clone, Default)]
pub struct LegacyBody(pub Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for LegacyBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| ApiError::new(rejection.status(), rejection.body_text()))?;
        LegacyBody::parse(&bytes)
    }
}

impl LegacyBody {
    /// # Errors
    /// The bytes are not JSON, or not an object.
    pub fn parse(bytes: &[u8]) -> Result<LegacyBody, ApiError> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(LegacyBody::default());
        }
        match serde_json::from_slice::<Value>(bytes) {
            Ok(Value::Object(map)) => Ok(LegacyBody(map)),
            Ok(_) => Err(ApiError::bad_request("the body must be a JSON object")),
            Err(error) => Err(ApiError::bad_request(format!(
                "the body is not valid JSON: {error}"
            ))),
        }
    }

    /// The value of `name`: the exact key, else the first key equal to it ignoring case.
    pub fn value(&self, name: &str) -> Option<&Value> {
        self.0.get(name).or_else(|| {
            self.0
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(name))
                .map(|(_, value)| value)
        })
    }

    /// Text, trimmed; numbers and booleans as written; absent or null: `None`.
    ///
    /// # Errors
    /// The value is an object or an array.
    pub fn text(&self, name: &str) -> Result<Option<String>, ApiError> {
        match self.value(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.trim().to_owned())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(Value::Bool(b)) => Ok(Some(b.to_string())),
            Some(_) => Err(ApiError::bad_request(format!(
                "field {name} must be a string"
            ))),
        }
    }

    /// Non-empty text.
    ///
    /// # Errors
    /// Missing, empty, or not text.
    pub fn required_text(&self, name: &str) -> Result<String, ApiError> {
        match self.text(name)? {
            Some(text) if !text.is_empty() => Ok(text),
            _ => Err(ApiError::bad_request(format!("field {name} is required"))),
        }
    }

    /// `true`/`false`, as JSON booleans or the strings `"true"`/`"false"` (any case),
    /// `1`/`0`; absent, null or `""`: `default`.
    ///
    /// # Errors
    /// Any other value.
    pub fn boolean(&self, name: &str, default: bool) -> Result<bool, ApiError> {
        let wrong = || ApiError::bad_request(format!("field {name} must be true or false"));
        match self.value(name) {
            None | Some(Value::Null) => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(Value::Number(n)) => match n.as_i64() {
                Some(0) => Ok(false),
                Some(1) => Ok(true),
                _ => Err(wrong()),
            },
            Some(Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
                "" => Ok(default),
                "true" | "1" => Ok(true),
                "false" | "0" => Ok(false),
                _ => Err(wrong()),
            },
            Some(_) => Err(wrong()),
        }
    }

    /// An integer, as a JSON number or a numeric string; absent, null or `""`: `None`.
    ///
    /// # Errors
    /// Anything else (fractions included).
    pub fn integer(&self, name: &str) -> Result<Option<i64>, ApiError> {
        let wrong = || ApiError::bad_request(format!("field {name} must be an integer"));
        match self.value(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n.as_i64().map(Some).ok_or_else(wrong),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| wrong()),
            Some(_) => Err(wrong()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(json: &str) -> LegacyBody {
        LegacyBody::parse(json.as_bytes()).unwrap()
    }

    #[test]
    fn keys_match_exactly_first_then_ignoring_case() {
        let b = body(r#"{"Filepath":"a.wav","FilePath":"b.wav","extension":" 1002 "}"#);
        assert_eq!(b.text("FilePath").unwrap().as_deref(), Some("b.wav"));
        assert_eq!(b.text("Filepath").unwrap().as_deref(), Some("a.wav"));
        assert_eq!(b.text("Extension").unwrap().as_deref(), Some("1002"));
        assert_eq!(b.text("Missing").unwrap(), None);
    }

    #[test]
    fn values_come_as_the_manual_sends_them() {
        let b = body(
            r#"{"Loopplay":"true","A_external":false,"IsMute":"FALSE","Limit":0,"level":"4","Member_id":3}"#,
        );
        assert!(b.boolean("Loopplay", false).unwrap());
        assert!(!b.boolean("A_external", true).unwrap());
        assert!(!b.boolean("IsMute", true).unwrap());
        assert!(b.boolean("Absent", true).unwrap());
        assert_eq!(b.integer("Limit").unwrap(), Some(0));
        assert_eq!(b.integer("level").unwrap(), Some(4));
        assert_eq!(b.text("Member_id").unwrap().as_deref(), Some("3"));
    }

    #[test]
    fn wrong_types_name_the_field() {
        let b = body(r#"{"Loopplay":"perhaps","Limit":"ten","Extension":[1],"Value":{}}"#);
        assert!(
            b.boolean("Loopplay", false)
                .unwrap_err()
                .message
                .contains("Loopplay")
        );
        assert!(b.integer("Limit").unwrap_err().message.contains("Limit"));
        assert!(
            b.text("Extension")
                .unwrap_err()
                .message
                .contains("Extension")
        );
        assert!(
            b.required_text("Phone")
                .unwrap_err()
                .message
                .contains("Phone")
        );
        assert_eq!(
            LegacyBody::parse(b"[1]").unwrap_err().message,
            "the body must be a JSON object"
        );
        assert!(LegacyBody::parse(b"{\"a\":").is_err());
        assert!(LegacyBody::parse(b"  ").unwrap().0.is_empty());
    }
}
