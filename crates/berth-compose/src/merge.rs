//! Merging compose files (`-f a -f b`, overrides, `extends`) by the Compose
//! Specification's rules as compose-go applies them, on canonical trees: mappings merge key
//! by key, `command`/`entrypoint`/`healthcheck.test` are replaced, `logging` merges only
//! when the drivers agree, `extra_hosts` is a union, other lists are appended; then
//! [`unique`] keeps one entry per key in lists that have one (ports, volumes, secrets, …),
//! the later definition in the earlier one's place.

use indexmap::IndexMap;

use crate::yaml::{MergeTag, Node, Value};

/// Whether `path` (keys; `*` matches any) matches `pattern` (dot-separated).
fn matches(path: &[&str], pattern: &str) -> bool {
    let parts: Vec<&str> = pattern.split('.').collect();
    parts.len() == path.len() && parts.iter().zip(path).all(|(p, k)| *p == "*" || p == k)
}

/// Merges `over` onto `base` at `path`.
pub fn merge(base: Node, over: Node, path: &mut Vec<String>) -> Node {
    let p: Vec<&str> = path.iter().map(String::as_str).collect();
    let replace = [
        "services.*.command",
        "services.*.entrypoint",
        "services.*.healthcheck.test",
        "services.*.ulimits.*",
    ];
    if replace.iter().any(|pat| matches(&p, pat)) {
        return over;
    }
    if matches(&p, "services.*.logging") {
        let driver = |n: &Node| n.get("driver").and_then(Node::as_str).map(str::to_owned);
        let (a, b) = (driver(&base), driver(&over));
        if a.is_some() && b.is_some() && a != b {
            return over;
        }
    }
    if matches(&p, "services.*.extra_hosts") || matches(&p, "services.*.build.extra_hosts") {
        if let (Value::Seq(mut a), Value::Seq(b)) = (base.value.clone(), over.value.clone()) {
            for item in b {
                if !a.iter().any(|x| x.value == item.value) {
                    a.push(item);
                }
            }
            return Node::new(Value::Seq(a), base.at);
        }
    }
    if matches(&p, "networks.*.ipam.config") {
        return merge_ipam(base, over, path);
    }
    if let Value::Null = over.value {
        return base;
    }
    match (base.value, over.value) {
        (Value::Map(mut a), Value::Map(b)) => {
            for (k, v) in b {
                match v.tag {
                    Some(MergeTag::Reset) => {
                        a.shift_remove(&k);
                        continue;
                    }
                    Some(MergeTag::Override) => {
                        a.insert(k, v);
                        continue;
                    }
                    None => {}
                }
                let merged = match a.shift_remove(&k) {
                    Some(existing) => {
                        path.push(k.clone());
                        let m = merge(existing, v, path);
                        path.pop();
                        m
                    }
                    None => v,
                };
                a.insert(k, merged);
            }
            Node::new(Value::Map(a), base.at)
        }
        (Value::Seq(mut a), Value::Seq(b)) => {
            a.extend(b);
            Node::new(Value::Seq(a), base.at)
        }
        (_, other) => Node::new(other, over.at),
    }
}

fn merge_ipam(base: Node, over: Node, path: &mut Vec<String>) -> Node {
    let (Value::Seq(configs), Value::Seq(overrides)) = (&base.value, &over.value) else {
        return over;
    };
    let subnet = |n: &Node| n.get("subnet").map(|s| s.value.clone());
    let mut out: Vec<Node> = Vec::new();
    for original in configs {
        for o in overrides {
            if subnet(o) != subnet(original) {
                if !out.iter().any(|x| subnet(x) == subnet(o)) {
                    out.push(o.clone());
                }
                continue;
            }
            let merged = merge(original.clone(), o.clone(), path);
            match out.iter().position(|x| subnet(x) == subnet(&merged)) {
                Some(i) => out[i] = merged,
                None => out.push(merged),
            }
        }
    }
    Node::new(Value::Seq(out), base.at)
}

/// The key that makes an entry of a list unique, by the list's path.
fn unique_key(path: &[&str], item: &Node) -> Option<Option<String>> {
    let text = |n: &Node| match &n.value {
        Value::Str(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        _ => None,
    };
    let field = |n: &Node, k: &str| n.get(k).and_then(text);
    let by_value = [
        "services.*.cap_add",
        "services.*.cap_drop",
        "services.*.dns",
        "services.*.dns_opt",
        "services.*.dns_search",
        "services.*.expose",
        "services.*.links",
        "services.*.profiles",
        "services.*.tmpfs",
        "services.*.networks.*.aliases",
        "services.*.networks.*.link_local_ips",
        "services.*.build.tags",
        "services.*.build.platforms",
    ];
    if by_value.iter().any(|p| matches(path, p)) {
        return Some(text(item).map(|s| s.split('=').next().unwrap_or("").to_owned()));
    }
    if matches(path, "services.*.volumes") || matches(path, "services.*.devices") {
        return Some(field(item, "target"));
    }
    if matches(path, "services.*.env_file") {
        return Some(field(item, "path"));
    }
    if matches(path, "services.*.secrets") || matches(path, "services.*.configs") {
        let default = if path[2] == "secrets" {
            "/run/secrets"
        } else {
            ""
        };
        return Some(
            field(item, "target")
                .or_else(|| field(item, "source").map(|s| format!("{default}/{s}"))),
        );
    }
    if matches(path, "services.*.ports") {
        let host = field(item, "host_ip").unwrap_or_else(|| "0.0.0.0".into());
        let published = field(item, "published").unwrap_or_default();
        let target = field(item, "target").unwrap_or_default();
        let protocol = field(item, "protocol").unwrap_or_else(|| "tcp".into());
        return Some(Some(format!("{host}:{published}:{target}/{protocol}")));
    }
    None
}

/// Keeps one entry per key in the lists that have keys.
pub fn unique(node: &mut Node, path: &mut Vec<String>) {
    match &mut node.value {
        Value::Map(m) => {
            // A `!reset` with nothing before it to reset.
            m.retain(|_, v| v.tag != Some(MergeTag::Reset));
            for (k, v) in m.iter_mut() {
                path.push(k.clone());
                unique(v, path);
                path.pop();
            }
        }
        Value::Seq(items) => {
            let p: Vec<&str> = path.iter().map(String::as_str).collect();
            let Some(first) = items.first() else { return };
            if unique_key(&p, first).is_none() {
                return;
            }
            let mut out: Vec<Node> = Vec::new();
            let mut seen: IndexMap<Option<String>, usize> = IndexMap::new();
            for item in items.drain(..) {
                let key = unique_key(&p, &item).flatten();
                match seen.get(&key) {
                    Some(&i) if key.is_some() => out[i] = item,
                    _ => {
                        seen.insert(key, out.len());
                        out.push(item);
                    }
                }
            }
            *items = out;
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml;
    use std::path::Path;

    fn load(s: &str) -> Node {
        yaml::parse(s, Path::new("t.yaml")).unwrap()
    }

    #[test]
    fn maps_merge_lists_append_commands_replace() {
        let a = load("services:\n  w:\n    image: a\n    command: [x, y]\n    environment: {A: '1', B: '2'}\n    cap_add: [X]\n");
        let b = load("services:\n  w:\n    image: b\n    command: [z]\n    environment: {B: '3'}\n    cap_add: [Y, X]\n");
        let mut m = merge(a, b, &mut Vec::new());
        unique(&mut m, &mut Vec::new());
        let j = m.to_json();
        assert_eq!(j["services"]["w"]["image"], "b");
        assert_eq!(j["services"]["w"]["command"], serde_json::json!(["z"]));
        assert_eq!(
            j["services"]["w"]["environment"],
            serde_json::json!({"A": "1", "B": "3"})
        );
        assert_eq!(j["services"]["w"]["cap_add"], serde_json::json!(["X", "Y"]));
    }

    #[test]
    fn logging_merges_only_with_the_same_driver() {
        let a = load("services:\n  w:\n    logging: {driver: json-file, options: {a: '1'}}\n");
        let b = load("services:\n  w:\n    logging: {driver: syslog, options: {b: '2'}}\n");
        let j = merge(a, b, &mut Vec::new()).to_json();
        assert_eq!(
            j["services"]["w"]["logging"]["options"],
            serde_json::json!({"b": "2"})
        );
    }
}
