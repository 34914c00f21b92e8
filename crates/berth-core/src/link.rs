//! Docker's legacy link specs (`--link name:alias`, `HostConfig.Links`, an endpoint's
//! `Links`): one parser for the CLI and the engine, with Docker's rules and words.

/// `name:alias` → (name, alias); `name` alone is its own alias. Inspect's form
/// `/name:/parent/alias` is taken too (a HostConfig read back from inspect), as Docker takes
/// it: the name without its `/`, the alias the last part of the path.
///
/// Docker's errors for an empty spec and for more than one `:`. Stricter than Docker: an
/// empty name or alias, or an alias with a `/`, is refused here (Docker accepts `name:` and
/// then makes no link, silently).
pub fn parse(spec: &str) -> Result<(String, String), String> {
    if spec.is_empty() {
        return Err("empty string specified for links".into());
    }
    let parts: Vec<&str> = spec.split(':').collect();
    let (name, alias) = match parts.as_slice() {
        [name] => {
            let name = name.strip_prefix('/').unwrap_or(name);
            (name, name)
        }
        [name, alias] => match name.strip_prefix('/') {
            Some(name) => (name, alias.rsplit('/').next().unwrap_or(alias)),
            None => (*name, *alias),
        },
        _ => return Err(format!("bad format for links: {spec}")),
    };
    let name = name.strip_prefix('/').unwrap_or(name);
    if name.is_empty() {
        return Err(format!("invalid link {spec:?}: no container named"));
    }
    if alias.is_empty() {
        return Err(format!("invalid link {spec:?}: the alias is empty"));
    }
    if alias.contains('/') {
        return Err(format!(
            "invalid link {spec:?}: an alias cannot contain '/'"
        ));
    }
    Ok((name.to_owned(), alias.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::parse;

    fn ok(spec: &str) -> (String, String) {
        parse(spec).unwrap()
    }

    #[test]
    fn name_and_alias_as_docker_reads_them() {
        assert_eq!(ok("db:data"), ("db".into(), "data".into()));
        assert_eq!(ok("db"), ("db".into(), "db".into()));
        // What inspect shows, given back.
        assert_eq!(ok("/db:/web/data"), ("db".into(), "data".into()));
        assert_eq!(ok("/db"), ("db".into(), "db".into()));
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        let err = |s: &str| parse(s).unwrap_err();
        assert_eq!(err(""), "empty string specified for links");
        assert_eq!(err("a:b:c"), "bad format for links: a:b:c");
        assert_eq!(err("db:"), "invalid link \"db:\": the alias is empty");
        assert_eq!(err(":x"), "invalid link \":x\": no container named");
        assert_eq!(
            err("db:a/b"),
            "invalid link \"db:a/b\": an alias cannot contain '/'"
        );
    }
}
