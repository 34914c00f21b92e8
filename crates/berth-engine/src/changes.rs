//! `--change` instructions for `import`/`commit` (`CMD ["sh"]`, `ENV A=1`, `WORKDIR /app` …),
//! the subset of Dockerfile instructions Docker accepts there.

use berth_image::oci::RunConfig;

/// A list in JSON form (`["a", "b"]`) or, for commands, shell form (`sh -c "…"`).
fn command(rest: &str) -> Vec<String> {
    let t = rest.trim();
    if t.starts_with('[') {
        if let Ok(v) = serde_json::from_str::<Vec<String>>(t) {
            return v;
        }
    }
    vec!["/bin/sh".to_owned(), "-c".to_owned(), t.to_owned()]
}

fn words(rest: &str) -> Vec<String> {
    let t = rest.trim();
    if t.starts_with('[') {
        if let Ok(v) = serde_json::from_str::<Vec<String>>(t) {
            return v;
        }
    }
    t.split_whitespace().map(str::to_owned).collect()
}

/// `K=V K2=V2` or the old `K V` form.
fn pairs(rest: &str) -> Vec<(String, String)> {
    let t = rest.trim();
    if !t.contains('=') {
        return match t.split_once(char::is_whitespace) {
            Some((k, v)) => vec![(k.to_owned(), v.trim().to_owned())],
            None => vec![(t.to_owned(), String::new())],
        };
    }
    t.split_whitespace()
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.trim_matches('"').to_owned()))
        .collect()
}

/// Applies `changes` to `config`; an unknown instruction is an error naming it.
pub fn apply(config: &mut RunConfig, changes: &[String]) -> Result<(), String> {
    for change in changes {
        let change = change.trim();
        if change.is_empty() {
            continue;
        }
        let (instr, rest) = change
            .split_once(char::is_whitespace)
            .unwrap_or((change, ""));
        match instr.to_ascii_uppercase().as_str() {
            "CMD" => config.cmd = Some(command(rest)),
            "ENTRYPOINT" => config.entrypoint = Some(command(rest)),
            "ENV" => {
                let env = config.env.get_or_insert_with(Vec::new);
                for (k, v) in pairs(rest) {
                    env.retain(|e| e.split_once('=').map_or(e.as_str(), |(ek, _)| ek) != k);
                    env.push(format!("{k}={v}"));
                }
            }
            "LABEL" => {
                let labels = config.labels.get_or_insert_with(Default::default);
                for (k, v) in pairs(rest) {
                    labels.insert(k, v);
                }
            }
            "EXPOSE" => {
                let ports = config.exposed_ports.get_or_insert_with(Default::default);
                for p in words(rest) {
                    let p = if p.contains('/') {
                        p
                    } else {
                        format!("{p}/tcp")
                    };
                    ports.insert(p, serde_json::json!({}));
                }
            }
            "VOLUME" => {
                let vols = config.volumes.get_or_insert_with(Default::default);
                for v in words(rest) {
                    vols.insert(v, serde_json::json!({}));
                }
            }
            "USER" => config.user = Some(rest.trim().to_owned()),
            "WORKDIR" => config.working_dir = Some(rest.trim().to_owned()),
            "STOPSIGNAL" => config.stop_signal = Some(rest.trim().to_owned()),
            "ONBUILD" => config
                .on_build
                .get_or_insert_with(Vec::new)
                .push(rest.trim().to_owned()),
            _ => return Err(format!("{instr} is not a valid change command")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockerfile_forms() {
        let mut c = RunConfig::default();
        apply(
            &mut c,
            &[
                r#"CMD ["sh", "-c", "echo hi"]"#.into(),
                "ENTRYPOINT /bin/run me".into(),
                "ENV A=1 B=two".into(),
                "env A=3".into(),
                "WORKDIR /app".into(),
                "EXPOSE 80 53/udp".into(),
                "LABEL maintainer=me".into(),
            ],
        )
        .unwrap();
        assert_eq!(c.cmd.unwrap(), vec!["sh", "-c", "echo hi"]);
        assert_eq!(c.entrypoint.unwrap(), vec!["/bin/sh", "-c", "/bin/run me"]);
        assert_eq!(c.env.unwrap(), vec!["B=two", "A=3"]);
        assert_eq!(c.working_dir.as_deref(), Some("/app"));
        let ports: Vec<String> = c.exposed_ports.unwrap().into_keys().collect();
        assert_eq!(ports, vec!["53/udp", "80/tcp"]);
        assert!(apply(&mut RunConfig::default(), &["RUN make".into()])
            .unwrap_err()
            .contains("RUN is not a valid change command"));
    }
}
