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
/// Top-level keys match the struct's fields without regard to case, as Go's decoder matches
/// them (docker-py sends exec's `detachKeys` for `DetachKeys`); an exact match wins.
pub fn decode_value<T: DeserializeOwned>(
    mut value: serde_json::Value,
    what: &str,
) -> Result<T, ApiError> {
    if let (Some(object), Some(fields)) = (value.as_object_mut(), fields_of::<T>()) {
        let renames: Vec<(String, &str)> = object
            .keys()
            .filter(|k| !fields.contains(&k.as_str()))
            .filter_map(|k| {
                let field = fields.iter().find(|f| f.eq_ignore_ascii_case(k))?;
                (!object.contains_key(*field)).then(|| (k.clone(), *field))
            })
            .collect();
        for (from, to) in renames {
            if let Some(v) = object.remove(&from) {
                object.insert(to.to_owned(), v);
            }
        }
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        ApiError::bad_request(go_message(what, &path, &e.into_inner().to_string()))
    })
}

/// Decodes a body as dockerd's `httputils.ReadJSON` does (the network and volume endpoints
/// among others). `go_type` is the request's Go type with its package
/// (`network.CreateRequest`): its name starts the field path of a wrong type's message. As
/// dockerd: an empty body or `null` is `{}`; a body that is no object is refused as Go refuses
/// it; every error starts with "invalid JSON: ". `strings` name the top-level string fields Go
/// leaves empty when they are missing or `null` and bollard's models require (`Name`): they
/// become `""`, for the engine to judge as dockerd does.
pub fn read_json<T: DeserializeOwned>(
    bytes: &[u8],
    go_type: &str,
    strings: &[&str],
) -> Result<T, ApiError> {
    let mut value: serde_json::Value = if bytes.iter().all(u8::is_ascii_whitespace) {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(bytes)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))?
    };
    if value.is_null() {
        value = serde_json::json!({});
    }
    let Some(object) = value.as_object_mut() else {
        return Err(ApiError::bad_request(format!(
            "invalid JSON: json: cannot unmarshal {} into Go value of type {go_type}",
            json_kind(&value)
        )));
    };
    for key in strings {
        if object.get(*key).is_none_or(serde_json::Value::is_null) {
            object.insert((*key).to_owned(), serde_json::Value::String(String::new()));
        }
    }
    let name = go_type.rsplit('.').next().unwrap_or(go_type);
    decode_value(value, name)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON: {}", e.message)))
}

/// The field names of struct `T` as serde sees them (its renames applied), or None when `T`
/// does not deserialize as a plain struct (a map, a flattened struct).
fn fields_of<'de, T: serde::Deserialize<'de>>() -> Option<&'static [&'static str]> {
    let mut probe = FieldProbe(None);
    let _ = T::deserialize(&mut probe);
    probe.0
}

/// A deserializer that only records the fields a struct asks for, then stops.
struct FieldProbe(Option<&'static [&'static str]>);

impl<'de> serde::Deserializer<'de> for &mut FieldProbe {
    type Error = serde::de::value::Error;

    fn deserialize_any<V: serde::de::Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(serde::de::Error::custom("not a struct"))
    }

    fn deserialize_struct<V: serde::de::Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0 = Some(fields);
        Err(serde::de::Error::custom("fields recorded"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

/// Go's word for a JSON value's kind, as its decoder names it in errors.
fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "bool",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(_) => "array",
        serde_json::Value::Object(_) => "object",
    }
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
    // Go names the struct that holds the field, then the field path without list indices
    // (`IPAM.Config.Subnet`); serde's path is from the top, so the holder is the top-level type.
    let field = path
        .replace('[', ".")
        .replace(']', "")
        .split('.')
        .filter(|p| !p.is_empty() && !p.bytes().all(|b| b.is_ascii_digit()))
        .collect::<Vec<_>>()
        .join(".");
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

    #[test]
    fn top_level_keys_match_fields_without_regard_to_case_as_go() {
        let body = br#"{"cmd": ["cat"], "detachKeys": "ctrl-p", "TTY": true}"#;
        let e: bollard_stubs::models::ExecConfig = decode(body, "ExecConfig").unwrap();
        assert_eq!(e.cmd.unwrap(), ["cat"]);
        assert_eq!(e.detach_keys.as_deref(), Some("ctrl-p"));
        assert_eq!(e.tty, Some(true));
        // The exact name wins over another spelling.
        let body = br#"{"DetachKeys": "ctrl-x", "detachkeys": "ctrl-p"}"#;
        let e: bollard_stubs::models::ExecConfig = decode(body, "ExecConfig").unwrap();
        assert_eq!(e.detach_keys.as_deref(), Some("ctrl-x"));
        assert_eq!(fields_of::<std::collections::HashMap<String, i64>>(), None);
    }

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

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Named {
        #[serde(rename = "Name")]
        name: String,
        #[serde(rename = "Labels")]
        labels: Option<std::collections::HashMap<String, String>>,
    }

    #[test]
    fn read_json_answers_as_dockerds_read_json() {
        let e =
            read_json::<Named>(br#"{"Name":5}"#, "network.CreateRequest", &["Name"]).unwrap_err();
        assert_eq!(e.status.as_u16(), 400);
        assert_eq!(
            e.message,
            "invalid JSON: json: cannot unmarshal number into Go struct field CreateRequest.Name of type string"
        );
        let e = read_json::<Named>(br#"{"Labels":"x"}"#, "network.CreateRequest", &["Name"])
            .unwrap_err();
        assert_eq!(
            e.message,
            "invalid JSON: json: cannot unmarshal string into Go struct field CreateRequest.Labels of type map[string]string"
        );
        let e = read_json::<Named>(b"[1]", "network.CreateRequest", &["Name"]).unwrap_err();
        assert_eq!(
            e.message,
            "invalid JSON: json: cannot unmarshal array into Go value of type network.CreateRequest"
        );
        let e = read_json::<Named>(b"{", "network.CreateRequest", &["Name"]).unwrap_err();
        assert!(e.message.starts_with("invalid JSON: "), "{}", e.message);
    }

    #[test]
    fn read_json_leaves_missing_strings_empty_as_go_does() {
        for body in [&b""[..], b"null", b"{}", br#"{"Name":null}"#] {
            let n: Named = read_json(body, "network.CreateRequest", &["Name"]).unwrap();
            assert_eq!(n.name, "", "{}", String::from_utf8_lossy(body));
            assert!(n.labels.is_none());
        }
        let n: Named = read_json(
            br#"{"Name":"n","Labels":{"a":"b"}}"#,
            "network.CreateRequest",
            &["Name"],
        )
        .unwrap();
        assert_eq!(
            (n.name.as_str(), n.labels.unwrap()["a"].as_str()),
            ("n", "b")
        );
    }

    #[test]
    fn list_indices_are_not_part_of_gos_field_path() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Pool {
            #[serde(rename = "Subnet")]
            subnet: Option<String>,
        }
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Ipam {
            #[serde(rename = "Config")]
            config: Vec<Pool>,
        }
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Net {
            #[serde(rename = "IPAM")]
            ipam: Ipam,
        }
        let e =
            decode::<Net>(br#"{"IPAM":{"Config":[{"Subnet":1}]}}"#, "CreateRequest").unwrap_err();
        assert_eq!(
            e.message,
            "json: cannot unmarshal number into Go struct field CreateRequest.IPAM.Config.Subnet of type string"
        );
    }

    #[test]
    fn empty_bodies_are_empty_objects_and_garbage_is_refused() {
        assert!(decode::<Req>(b"", "X").unwrap().host.is_none());
        let e = decode::<Req>(b"{not json", "X").unwrap_err();
        assert!(e.message.starts_with("invalid JSON"), "{}", e.message);
    }
}
