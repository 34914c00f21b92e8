//! A device cgroup rule as Docker reads `--device-cgroup-rule`: `TYPE MAJOR:MINOR ACCESS`
//! (`c 1:3 mr`, `a *:* rwm`), exactly one space between the fields, `*` for any number,
//! one to three of `r`, `w`, `m` (Docker's `^([acb]) ([0-9]+|\*):([0-9]+|\*) ([rwm]{1,3})$`).
//! The CLI checks the flag with it and the runtime spec builder turns it into OCI's form.

/// One parsed rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupRule {
    /// `a` (all), `b` (block) or `c` (character).
    pub typ: char,
    /// None: `*`.
    pub major: Option<i64>,
    pub minor: Option<i64>,
    pub access: String,
}

impl std::str::FromStr for CgroupRule {
    type Err = ();

    fn from_str(rule: &str) -> Result<CgroupRule, ()> {
        let [typ, numbers, access] = rule.split(' ').collect::<Vec<_>>()[..] else {
            return Err(());
        };
        let typ = match typ {
            "a" => 'a',
            "b" => 'b',
            "c" => 'c',
            _ => return Err(()),
        };
        let number = |s: &str| -> Result<Option<i64>, ()> {
            if s == "*" {
                Ok(None)
            } else if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
                s.parse().map(Some).map_err(|_| ())
            } else {
                Err(())
            }
        };
        let (major, minor) = numbers.split_once(':').ok_or(())?;
        let (major, minor) = (number(major)?, number(minor)?);
        if access.is_empty() || access.len() > 3 || !access.chars().all(|c| "rwm".contains(c)) {
            return Err(());
        }
        Ok(CgroupRule {
            typ,
            major,
            minor,
            access: access.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_read_as_dockers_pattern() {
        assert_eq!(
            "c 1:3 mr".parse(),
            Ok(CgroupRule {
                typ: 'c',
                major: Some(1),
                minor: Some(3),
                access: "mr".into()
            })
        );
        let any: CgroupRule = "a *:* rwm".parse().unwrap();
        assert_eq!((any.major, any.minor), (None, None));
        for bad in [
            "c 1:3",
            "x 1:3 r",
            "c 1:3 rwmr",
            "c  1:3 r",
            "c 1-3 r",
            "c 1:3 q",
            "c :3 r",
        ] {
            assert!(bad.parse::<CgroupRule>().is_err(), "{bad}");
        }
    }
}
