//! Entry points for the fuzz targets in `fuzz/` (see the README's "Fuzzing" section): thin
//! re-exports of parsers that are private to their modules, so a target runs the very code the
//! server runs. Nothing here is used by Rivetr itself, and nothing here changes behaviour; the
//! parsers that are public already (`Config::parse`, `deploy_toml::read`, the webhook
//! `Provider` methods) are called by the targets directly.

pub use crate::proxy::h1::fuzzing::{Decoded, ResponseHead, decode_chunked, parse_response_head};
pub use crate::proxy::plain::fuzzing::{RequestHead, parse_request_head};
