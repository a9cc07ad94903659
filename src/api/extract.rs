//! Request extractors whose rejections speak the API's error format, and the layer that turns
//! any other error response into it.
//!
//! axum's own `Json` and `Path` reject with plain text and without naming the field; these
//! name it: a JSON syntax error gives its line and column (400 `invalid_json`), a missing or
//! mistyped field gives its path (400 `invalid_json`), a body over the limit gives 413. Checks
//! of a value's meaning (422) belong to the handler, through [`ApiError::invalid_value`].

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// The largest JSON body the resource endpoints accept.
pub const JSON_BODY_LIMIT: usize = 1024 * 1024;

/// A JSON body, parsed with errors that name the field.
#[derive(Debug, Clone)]
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "the body must be JSON, sent with `Content-Type: application/json`",
            ));
        }
        let (parts, body) = req.into_parts();
        let bytes = read_body(&parts.headers, body, JSON_BODY_LIMIT).await?;
        parse_json(&bytes).map(Json)
    }
}

fn is_json(headers: &HeaderMap) -> bool {
    let Some(ct) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Reads a whole body of at most `limit` bytes: 413 beyond it, refused from `Content-Length`
/// before reading when the client announces it.
pub async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, ApiError> {
    let announced = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::payload_too_large(limit));
    }
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let inner = e.into_inner();
        if inner
            .downcast_ref::<http_body_util::LengthLimitError>()
            .is_some()
        {
            ApiError::payload_too_large(limit)
        } else {
            ApiError::bad_request(
                "body_read",
                format!("the request body could not be read: {inner}"),
            )
        }
    })
}

/// Parses JSON, naming the line and column of a syntax error, or the path of a field that is
/// missing, unknown or of the wrong type.
///
/// A number with no fraction is an integer whichever way it is written: JSON does not tell
/// `5` from `5.0`, and neither does JSON Schema's `integer`, which the OpenAPI document
/// promises (issue 17: `{"port": 8080.0}` was refused as "floating point, expected u16").
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request("invalid_json", format!("malformed JSON: {e}")))?;
    integral_floats_as_integers(&mut value);
    serde_path_to_error::deserialize(ObjectsOnly(value)).map_err(json_error)
}

/// A JSON value that gives a struct only from an object. serde's derived structs also take
/// an array of their fields in order, so `{"resources": [null, null]}` was a valid app patch
/// and `[null, null]` a valid notification patch (issue 17, schemathesis): the document
/// promises an object, and an array of values is a client's mistake worth refusing.
struct ObjectsOnly(serde_json::Value);

impl<'de> serde::de::IntoDeserializer<'de, serde_json::Error> for ObjectsOnly {
    type Deserializer = Self;

    fn into_deserializer(self) -> Self {
        self
    }
}

impl ObjectsOnly {
    fn visit_object<'de, V: serde::de::Visitor<'de>>(
        fields: serde_json::Map<String, serde_json::Value>,
        visitor: V,
    ) -> Result<V::Value, serde_json::Error> {
        let mut map = serde::de::value::MapDeserializer::new(
            fields.into_iter().map(|(k, v)| (k, ObjectsOnly(v))),
        );
        let value = visitor.visit_map(&mut map)?;
        map.end()?;
        Ok(value)
    }

    fn visit_array<'de, V: serde::de::Visitor<'de>>(
        items: Vec<serde_json::Value>,
        visitor: V,
    ) -> Result<V::Value, serde_json::Error> {
        let mut seq = serde::de::value::SeqDeserializer::new(items.into_iter().map(ObjectsOnly));
        let value = visitor.visit_seq(&mut seq)?;
        seq.end()?;
        Ok(value)
    }
}

/// Hands the `deserialize_*` calls that need no care straight to the value.
macro_rules! forward_to_value {
    ($($method:ident)*) => {$(
        fn $method<V: serde::de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
            serde::Deserializer::$method(self.0, visitor)
        }
    )*};
}

impl<'de> serde::Deserializer<'de> for ObjectsOnly {
    type Error = serde_json::Error;

    fn deserialize_any<V: serde::de::Visitor<'de>>(
        self,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        use serde_json::Value;
        match self.0 {
            Value::Object(fields) => Self::visit_object(fields, visitor),
            Value::Array(items) => Self::visit_array(items, visitor),
            other => serde::Deserializer::deserialize_any(other, visitor),
        }
    }

    fn deserialize_struct<V: serde::de::Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        use serde_json::Value;
        match self.0 {
            Value::Object(fields) => Self::visit_object(fields, visitor),
            Value::Array(_) => Err(serde::de::Error::invalid_type(
                serde::de::Unexpected::Seq,
                &"an object",
            )),
            other => serde::Deserializer::deserialize_struct(other, name, fields, visitor),
        }
    }

    fn deserialize_map<V: serde::de::Visitor<'de>>(
        self,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        match self.0 {
            serde_json::Value::Object(fields) => Self::visit_object(fields, visitor),
            other => serde::Deserializer::deserialize_map(other, visitor),
        }
    }

    fn deserialize_seq<V: serde::de::Visitor<'de>>(
        self,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        match self.0 {
            serde_json::Value::Array(items) => Self::visit_array(items, visitor),
            other => serde::Deserializer::deserialize_seq(other, visitor),
        }
    }

    fn deserialize_tuple<V: serde::de::Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: serde::de::Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_option<V: serde::de::Visitor<'de>>(
        self,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        match self.0 {
            serde_json::Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: serde::de::Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_unit_struct<V: serde::de::Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        serde::Deserializer::deserialize_unit_struct(self.0, name, visitor)
    }

    fn deserialize_enum<V: serde::de::Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        serde::Deserializer::deserialize_enum(self.0, name, variants, visitor)
    }

    forward_to_value! {
        deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64
        deserialize_i128 deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64
        deserialize_u128 deserialize_f32 deserialize_f64 deserialize_char deserialize_str
        deserialize_string deserialize_bytes deserialize_byte_buf deserialize_unit
        deserialize_identifier deserialize_ignored_any
    }
}

/// Rewrites every float with no fractional part that an `i64` or `u64` holds exactly as that
/// integer, so integer fields accept it; every other number is left as it is.
fn integral_floats_as_integers(value: &mut serde_json::Value) {
    use serde_json::{Number, Value};
    match value {
        Value::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            // 2^64 and -2^63 are exact as floats; the casts below are exact inside them.
            if f.is_finite() && f.fract() == 0.0 {
                if (0.0..18_446_744_073_709_551_616.0).contains(&f) {
                    *n = Number::from(f as u64);
                } else if (-9_223_372_036_854_775_808.0..0.0).contains(&f) {
                    *n = Number::from(f as i64);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral_floats_as_integers),
        Value::Object(fields) => fields.values_mut().for_each(integral_floats_as_integers),
        _ => {}
    }
}

fn json_error(e: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let path = e.path().to_string();
    let inner = e.into_inner();
    let message = if inner.is_syntax() || inner.is_eof() {
        format!("malformed JSON: {inner}")
    } else if path == "." || path.is_empty() {
        // serde reports a missing or unknown field at its parent: the message names it.
        format!("JSON body: {}", strip_position(&inner))
    } else {
        format!("JSON field `{path}`: {}", strip_position(&inner))
    };
    ApiError::bad_request("invalid_json", message)
}

/// serde_json appends " at line L column C" to type errors; the field path says more.
fn strip_position(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.rfind(" at line ") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}

/// Path parameters, with a rejection that names the parameter.
#[derive(Debug, Clone)]
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| Path(v))
            .map_err(|rejection| {
                ApiError::bad_request("invalid_path", format!("path: {}", rejection.body_text()))
            })
    }
}

/// Gives every error response the `{"error": {"code", "message"}}` body. Responses that are
/// already JSON pass untouched; others (axum's plain-text rejections, an empty 405) get a
/// code from their status and their text as the message. Headers such as `Allow` are kept.
pub async fn json_errors(req: Request, next: axum::middleware::Next) -> Response {
    let res = next.run(req).await;
    let status = res.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return res;
    }
    let is_json = res
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if is_json {
        return res;
    }
    let (mut parts, body) = res.into_parts();
    let text = axum::body::to_bytes(body, 16 * 1024)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&text).trim().to_owned();
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_owned()
    } else {
        text
    };
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    parts
        .headers
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let mut fresh = ApiError::new(status, code_for(status), message).into_response();
    for (name, value) in &parts.headers {
        if name != CONTENT_TYPE {
            fresh.headers_mut().insert(name.clone(), value.clone());
        }
    }
    fresh
}

fn code_for(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::CONFLICT => "conflict",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "invalid_value",
        StatusCode::TOO_MANY_REQUESTS => "rate_limited",
        s if s.is_server_error() => "internal",
        _ => "error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        inner: Option<Inner>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Inner {
        port: u16,
    }

    fn message(bytes: &str) -> (StatusCode, String) {
        let e = parse_json::<Body>(bytes.as_bytes()).unwrap_err();
        (e.status, e.message)
    }

    #[test]
    fn syntax_errors_give_line_and_column() {
        let (status, msg) = message("{\n  \"name\": }");
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(msg.contains("malformed JSON"), "{msg}");
        assert!(msg.contains("line 2"), "{msg}");
        let (_, msg) = message("{\"name\": \"x\"} trailing");
        assert!(msg.contains("malformed JSON"), "{msg}");
    }

    #[test]
    fn field_errors_name_the_field() {
        let (_, msg) = message(r#"{"name": 5}"#);
        assert!(msg.contains("`name`"), "{msg}");
        assert!(!msg.contains(" at line "), "{msg}");
        let (_, msg) = message(r#"{"name": "x", "inner": {"port": 70000}}"#);
        assert!(msg.contains("`inner.port`"), "{msg}");
        let (_, msg) = message(r#"{}"#);
        assert!(msg.contains("missing field `name`"), "{msg}");
        let (_, msg) = message(r#"{"name": "x", "nmae": 1}"#);
        assert!(msg.contains("unknown field `nmae`"), "{msg}");
    }

    #[test]
    fn integers_written_with_a_zero_fraction_are_integers() {
        let body: Body = parse_json(br#"{"name": "x", "inner": {"port": 8080.0}}"#).unwrap();
        assert_eq!(body.inner.unwrap().port, 8080);
        let v: Vec<i64> = parse_json(b"[-3.0, 0.0, -0.0, 1e3]").unwrap();
        assert_eq!(v, [-3, 0, 0, 1000]);
        let v: Vec<f64> = parse_json(b"[1.5, 2.0, 3]").unwrap();
        assert_eq!(v, [1.5, 2.0, 3.0]);
        let (status, msg) = message(r#"{"name": "x", "inner": {"port": 80.5}}"#);
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(
            msg.contains("`inner.port`") && msg.contains("80.5"),
            "{msg}"
        );
        let (_, msg) = message(r#"{"name": "x", "inner": {"port": 70000.0}}"#);
        assert!(
            msg.contains("`inner.port`") && msg.contains("70000"),
            "{msg}"
        );
    }

    #[test]
    fn json_content_types() {
        let mut h = HeaderMap::new();
        assert!(!is_json(&h));
        for (ct, ok) in [
            ("application/json", true),
            ("application/json; charset=utf-8", true),
            ("Application/JSON", true),
            ("application/merge-patch+json", true),
            ("text/plain", false),
            ("application/x-www-form-urlencoded", false),
        ] {
            h.insert(CONTENT_TYPE, HeaderValue::from_static(ct));
            assert_eq!(is_json(&h), ok, "{ct}");
        }
    }
}
