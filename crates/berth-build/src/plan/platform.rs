//! [`Platform`] (`os/arch[/variant]`, parsed as Docker reads `--platform`) and the automatic
//! platform args (`TARGETPLATFORM`, `BUILDARCH`, …) it gives.

use std::collections::BTreeMap;
use std::fmt;

/// An OCI platform, `os/arch[/variant]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    /// This host's platform.
    pub fn host() -> Platform {
        let (os, arch, variant) = berth_image::oci::host_platform();
        Platform {
            os: os.into(),
            architecture: arch.into(),
            variant: variant.map(Into::into),
        }
    }

    /// Parses `linux/arm64/v8`, `linux/amd64`, or one known word: an architecture alone
    /// (`arm64`, Linux) or `linux`. Errors in Docker's words.
    pub fn parse(s: &str) -> Result<Platform, String> {
        berth_core::platform::check(s)?;
        let parts: Vec<&str> = s.trim().split('/').collect();
        let bad = || format!("\"{s}\": unknown operating system or architecture: invalid argument");
        let norm_arch = |a: &str| -> String {
            match a.to_ascii_lowercase().as_str() {
                "x86_64" | "x86-64" => "amd64".into(),
                "aarch64" => "arm64".into(),
                "armhf" => "arm".into(),
                "i386" => "386".into(),
                other => other.into(),
            }
        };
        let (os, arch, variant) = match parts.as_slice() {
            [a] if *a != "linux" => ("linux".to_owned(), norm_arch(a), None),
            [os, a] => (os.to_ascii_lowercase(), norm_arch(a), None),
            [os, a, v] => (
                os.to_ascii_lowercase(),
                norm_arch(a),
                Some(v.to_ascii_lowercase()),
            ),
            _ => return Err(bad()),
        };
        let variant = match (arch.as_str(), variant) {
            ("arm64", Some(v)) if v == "v8" => Some(v),
            (_, v) => v,
        };
        Ok(Platform {
            os,
            architecture: arch,
            variant,
        })
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// The automatic platform args, from the target and build platforms.
pub fn platform_args(target: &Platform, build: &Platform) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for (prefix, p) in [("TARGET", target), ("BUILD", build)] {
        m.insert(format!("{prefix}PLATFORM"), p.to_string());
        m.insert(format!("{prefix}OS"), p.os.clone());
        m.insert(format!("{prefix}ARCH"), p.architecture.clone());
        m.insert(
            format!("{prefix}VARIANT"),
            p.variant.clone().unwrap_or_default(),
        );
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::testutil::amd64;

    #[test]
    fn platforms() {
        let p = Platform::parse("linux/arm64/v8").unwrap();
        assert_eq!(p.to_string(), "linux/arm64/v8");
        assert_eq!(
            Platform::parse("linux/x86_64").unwrap().architecture,
            "amd64"
        );
        assert_eq!(Platform::parse("arm64").unwrap().to_string(), "linux/arm64");
        assert!(Platform::parse("linux//x").is_err());
        let a = platform_args(&p, &amd64());
        assert_eq!(a["TARGETPLATFORM"], "linux/arm64/v8");
        assert_eq!(a["TARGETARCH"], "arm64");
        assert_eq!(a["TARGETVARIANT"], "v8");
        assert_eq!(a["BUILDOS"], "linux");
        assert_eq!(a["BUILDVARIANT"], "");
    }
}
