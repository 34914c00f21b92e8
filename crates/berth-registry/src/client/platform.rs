//! Platforms (`os/arch[/variant]`) and choosing a manifest from an index or manifest list, by
//! containerd's rules as Docker uses them: names normalized (`x86_64` is `amd64`, `aarch64`
//! is `arm64`, `arm64/v8` is plain `arm64`, `arm` is `arm/v7`), an exact match preferred,
//! then what the platform can also run (`arm/v7` runs `v6` and `v5`, `amd64/v3` runs `v2`
//! and `v1`, `amd64` runs `386`, `arm64` runs 32-bit `arm`).

use berth_image::oci::{host_platform, Descriptor, ImageIndex, Platform};

use super::error::{RegistryError, Result};

/// `linux/amd64`, `linux/arm/v7`, `linux/arm64` (an architecture alone means this host's
/// OS), normalized.
pub fn parse_platform(text: &str) -> Result<Platform> {
    let bad = || {
        RegistryError::InvalidArgument(format!(
            "\"{text}\": unknown operating system or architecture: invalid argument"
        ))
    };
    let parts: Vec<&str> = text.trim().split('/').collect();
    if parts.iter().any(|p| p.is_empty()) || parts.len() > 3 {
        return Err(bad());
    }
    let p = match parts.as_slice() {
        // One word is an OS or an architecture, and must be a known one (containerd's rule).
        [word] if !is_os(word) && !berth_image::oci::is_known_arch(word) => return Err(bad()),
        [arch] if !is_os(arch) => Platform {
            os: host_platform().0.into(),
            architecture: (*arch).into(),
            variant: None,
        },
        [os] => Platform {
            os: (*os).into(),
            architecture: host_platform().1.into(),
            variant: host_platform().2.map(str::to_owned),
        },
        [os, arch] => Platform {
            os: (*os).into(),
            architecture: (*arch).into(),
            variant: None,
        },
        [os, arch, variant] => Platform {
            os: (*os).into(),
            architecture: (*arch).into(),
            variant: Some((*variant).into()),
        },
        _ => return Err(bad()),
    };
    if !p
        .os
        .chars()
        .chain(p.architecture.chars())
        .chain(p.variant.iter().flat_map(|v| v.chars()))
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
    {
        return Err(bad());
    }
    Ok(normalize(&p))
}

fn is_os(s: &str) -> bool {
    berth_image::oci::is_known_os(s)
}

/// containerd's normalization.
pub fn normalize(p: &Platform) -> Platform {
    let os = match p.os.to_ascii_lowercase().as_str() {
        "macos" => "darwin".to_owned(),
        other => other.to_owned(),
    };
    let variant = p
        .variant
        .as_deref()
        .map(str::to_ascii_lowercase)
        .filter(|v| !v.is_empty());
    let (arch, variant) = match (p.architecture.to_ascii_lowercase().as_str(), variant) {
        ("i386", _) => ("386".to_owned(), None),
        ("x86_64" | "x86-64" | "amd64", v) => {
            ("amd64".to_owned(), v.filter(|v| v != "v1" && v != "1"))
        }
        ("aarch64" | "arm64", v) => (
            "arm64".to_owned(),
            match v.as_deref() {
                None | Some("8" | "v8" | "v8.0") => None,
                Some("9" | "9.0" | "v9.0") => Some("v9".to_owned()),
                Some(_) => v,
            },
        ),
        ("armhf", _) => ("arm".to_owned(), Some("v7".to_owned())),
        ("armel", _) => ("arm".to_owned(), Some("v6".to_owned())),
        ("arm", v) => (
            "arm".to_owned(),
            match v.as_deref() {
                None | Some("7") => Some("v7".to_owned()),
                Some(n @ ("5" | "6" | "8")) => Some(format!("v{n}")),
                Some(_) => v,
            },
        ),
        (other, v) => (other.to_owned(), v),
    };
    Platform {
        architecture: arch,
        os,
        variant,
    }
}

/// `os/arch[/variant]`.
pub fn format_platform(p: &Platform) -> String {
    match &p.variant {
        Some(v) if !v.is_empty() => format!("{}/{}/{v}", p.os, p.architecture),
        _ => format!("{}/{}", p.os, p.architecture),
    }
}

/// This host's platform (`linux/amd64`, `linux/arm64/v8`…), as Docker names it in messages.
pub fn host() -> Platform {
    let (os, arch, variant) = host_platform();
    Platform {
        os: os.into(),
        architecture: arch.into(),
        variant: variant.map(str::to_owned),
    }
}

fn numbered(variant: Option<&str>) -> Option<u32> {
    variant?.strip_prefix('v')?.parse().ok()
}

/// What `wanted` runs, best first (all normalized).
pub fn compatible(wanted: &Platform) -> Vec<Platform> {
    let w = normalize(wanted);
    let make = |arch: &str, variant: Option<String>| Platform {
        os: w.os.clone(),
        architecture: arch.to_owned(),
        variant,
    };
    let mut out = vec![w.clone()];
    match w.architecture.as_str() {
        "amd64" => {
            if let Some(n) = numbered(w.variant.as_deref()) {
                for lower in (2..n).rev() {
                    out.push(make("amd64", Some(format!("v{lower}"))));
                }
                out.push(make("amd64", None));
            }
            out.push(make("386", None));
        }
        "arm64" => {
            if w.variant.is_some() {
                out.push(make("arm64", None));
            }
            for n in (5..=8).rev() {
                out.push(make("arm", Some(format!("v{n}"))));
            }
        }
        "arm" => {
            if let Some(n) = numbered(w.variant.as_deref()) {
                for lower in (5..n).rev() {
                    out.push(make("arm", Some(format!("v{lower}"))));
                }
            }
        }
        _ => {}
    }
    out
}

/// Entries that are images (not attestations or other artifacts).
fn is_image_entry(d: &Descriptor) -> bool {
    let attestation = d
        .annotations
        .get("vnd.docker.reference.type")
        .is_some_and(|t| t == "attestation-manifest");
    !attestation && d.platform.as_ref().is_some_and(|p| p.os != "unknown")
}

/// The manifest of `index` for `wanted`, or Docker's error naming what there is.
pub fn select<'a>(index: &'a ImageIndex, wanted: &Platform) -> Result<&'a Descriptor> {
    let entries: Vec<(&Descriptor, Platform)> = index
        .manifests
        .iter()
        .filter(|d| is_image_entry(d))
        .map(|d| {
            (
                d,
                normalize(d.platform.as_ref().expect("image entries have one")),
            )
        })
        .collect();
    for candidate in compatible(wanted) {
        if let Some((d, _)) = entries.iter().find(|(_, p)| *p == candidate) {
            return Ok(d);
        }
    }
    let mut available: Vec<String> = entries.iter().map(|(_, p)| format_platform(p)).collect();
    available.dedup();
    Err(RegistryError::NoMatchingManifest {
        wanted: format_platform(wanted),
        available: if available.is_empty() {
            "none".into()
        } else {
            available.join(", ")
        },
    })
}

/// Whether an image config's platform is what `wanted` asks for (a single-platform image
/// pulled with `--platform`).
pub fn matches(wanted: &Platform, os: &str, arch: &str, variant: Option<&str>) -> bool {
    let actual = normalize(&Platform {
        os: os.into(),
        architecture: arch.into(),
        variant: variant.map(str::to_owned),
    });
    compatible(wanted).contains(&actual)
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_core::Digest;

    fn p(s: &str) -> Platform {
        parse_platform(s).unwrap()
    }

    fn entry(platform: &str, hex: char) -> Descriptor {
        let digest: Digest = format!("sha256:{}", hex.to_string().repeat(64))
            .parse()
            .unwrap();
        let mut d = Descriptor::new(berth_image::oci::MEDIA_MANIFEST, digest, 1);
        let parts: Vec<&str> = platform.split('/').collect();
        d.platform = Some(Platform {
            os: parts[0].into(),
            architecture: parts[1].into(),
            variant: parts.get(2).map(|v| v.to_string()),
        });
        d
    }

    fn index(entries: Vec<Descriptor>) -> ImageIndex {
        ImageIndex {
            schema_version: 2,
            media_type: Some(berth_image::oci::MEDIA_INDEX.into()),
            manifests: entries,
            annotations: Default::default(),
        }
    }

    #[test]
    fn parsing_and_normalizing() {
        assert_eq!(format_platform(&p("linux/amd64")), "linux/amd64");
        assert_eq!(format_platform(&p("linux/x86_64")), "linux/amd64");
        assert_eq!(format_platform(&p("linux/aarch64")), "linux/arm64");
        assert_eq!(format_platform(&p("linux/arm64/v8")), "linux/arm64");
        assert_eq!(format_platform(&p("linux/arm")), "linux/arm/v7");
        assert_eq!(format_platform(&p("linux/armhf")), "linux/arm/v7");
        assert_eq!(format_platform(&p("linux/arm/6")), "linux/arm/v6");
        assert_eq!(format_platform(&p("Linux/AMD64")), "linux/amd64");
        assert_eq!(format_platform(&p("arm64")), "linux/arm64");
        for bad in ["", "/", "linux/", "a/b/c/d", "linux/amd 64"] {
            assert!(parse_platform(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn choosing_from_an_index() {
        let i = index(vec![
            entry("linux/amd64", 'a'),
            entry("linux/arm/v6", 'b'),
            entry("linux/arm/v7", 'c'),
            entry("linux/arm64/v8", 'd'),
            entry("unknown/unknown", 'e'),
        ]);
        let pick = |s: &str| select(&i, &p(s)).unwrap().digest.hex()[..1].to_owned();
        assert_eq!(pick("linux/amd64"), "a");
        assert_eq!(pick("linux/arm64"), "d");
        assert_eq!(pick("linux/arm64/v8"), "d");
        assert_eq!(pick("linux/arm/v7"), "c");
        assert_eq!(pick("linux/arm/v6"), "b");
        assert_eq!(pick("linux/arm/v8"), "c", "v8 runs v7");
        assert_eq!(pick("linux/amd64/v3"), "a", "v3 runs v1");
        let err = select(&i, &p("linux/s390x")).unwrap_err().to_string();
        assert_eq!(
            err,
            "no matching manifest for linux/s390x in the manifest list entries \
             (available: linux/amd64, linux/arm/v6, linux/arm/v7, linux/arm64)"
        );
        assert!(select(&i, &p("linux/arm/v5")).is_err(), "v5 cannot run v6");
        // An arm64 host runs 32-bit arm images when there is nothing better.
        let only_arm = index(vec![entry("linux/arm/v7", 'c')]);
        assert!(select(&only_arm, &p("linux/arm64")).is_ok());
        // An amd64 host runs 386 images.
        let only_386 = index(vec![entry("linux/386", 'f')]);
        assert!(select(&only_386, &p("linux/amd64")).is_ok());
        assert!(select(&only_386, &p("windows/amd64")).is_err());
    }

    #[test]
    fn single_platform_checks() {
        assert!(matches(&p("linux/arm64"), "linux", "arm64", Some("v8")));
        assert!(matches(&p("linux/amd64"), "linux", "amd64", None));
        assert!(!matches(&p("linux/amd64"), "linux", "arm64", None));
    }
}
