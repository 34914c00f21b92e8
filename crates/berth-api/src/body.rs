//! Request bodies decoded into typed structs at the edge, with Docker's wording when a field
//! has the wrong type (`json: cannot unmarshal string into Go struct field … of type int64`),
//! so clients that match on dockerd's messages see the same ones from berth.

use serde::de::DeserializeOwned;

use crate::ApiError;

/// Decodes `bytes` as JSON into `T`; `what` names the request's top-level Go type, which
/// Docker's messages start the field path with (`ContainerCreateRequest`…). An empty body
/// decodes as `{}`, as Docker treats it.
pub fn decode<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, ApiError> {
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    decode_value(
        serde_json::from_slice(bytes)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))?,
        what,
    )
}

/// As [`decode`], from a JSON value already parsed (and perhaps adjusted) by the caller.
pub fn decode_value<T: DeserializeOwned>(
    value: serde_json::Value,
    what: &str,
) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        ApiError::bad_request(go_message(what, &path, &e.into_inner().to_string()))
    })
}

/// Turns serde's "invalid type: string \"abc\", expected i64" at `path` into Go's
/// "json: cannot unmarshal string into Go struct field T.path of type int64".
fn go_message(what: &str, path: &str, serde: &str) -> String {
    let Some(rest) = serde.strip_prefix("invalid type: ") else {
        return format!("invalid JSON in {what}.{path}: {serde}");
    };
    let (found, expected) = rest.split_once(", expected ").unwrap_or((rest, ""));
    let found = match found.split_whitespace().next().unwrap_or("") {
        "string" => "string",
        "integer" | "floating" => "number",
        "boolean" => "bool",
        "sequence" => "array",
        "map" => "object",
        "null" => "null",
        other => other,
    };
    let ty = go_type(expected.trim());
    // Go names the struct that holds the field, then the field path; serde's path is from
    // the top, so the holder is the top-level type.
    let field = path.replace("[", ".").replace("]", "");
    format!("json: cannot unmarshal {found} into Go struct field {what}.{field} of type {ty}")
}

fn go_type(expected: &str) -> &str {
    match expected {
        "i64" => "int64",
        "i32" => "int32",
        "u64" => "uint64",
        "u32" => "uint32",
        "u16" => "uint16",
        "u8" => "uint8",
        "usize" => "int",
        "f64" | "f32" => "float64",
        "a boolean" => "bool",
        "a string" => "string",
        "a sequence" => "[]string",
        "a map" => "map[string]string",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Host {
        #[serde(rename = "Memory")]
        memory: Option<i64>,
        #[serde(rename = "Privileged")]
        privileged: Option<bool>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Req {
        #[serde(rename = "HostConfig")]
        host: Option<Host>,
    }

    #[test]
    fn wrong_types_get_gos_wording() {
        let e = decode::<Req>(
            br#"{"HostConfig":{"Memory":"abc"}}"#,
            "ContainerCreateRequest",
        )
        .unwrap_err();
        assert_eq!(e.status.as_u16(), 400);
        assert_eq!(
            e.message,
            "json: cannot unmarshal string into Go struct field ContainerCreateRequest.HostConfig.Memory of type int64"
        );
        let e = decode::<Req>(br#"{"HostConfig":{"Privileged":1}}"#, "X").unwrap_err();
        assert_eq!(
            e.message,
            "json: cannot unmarshal number into Go struct field X.HostConfig.Privileged of type bool"
        );
    }

    #[test]
    fn empty_bodies_are_empty_objects_and_garbage_is_refused() {
        assert!(decode::<Req>(b"", "X").unwrap().host.is_none());
        let e = decode::<Req>(b"{not json", "X").unwrap_err();
        assert!(e.message.starts_with("invalid JSON"), "{}", e.message);
    }
}
