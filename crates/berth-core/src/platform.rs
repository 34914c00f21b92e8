//! Platform words (`os/arch[/variant]`) as Go's toolchain and containerd know them, so every
//! crate judges a `--platform` alike.

/// Whether `os` is a GOOS value (containerd's list of known operating systems).
pub fn is_known_os(os: &str) -> bool {
    matches!(
        os.to_ascii_lowercase().as_str(),
        "aix"
            | "android"
            | "darwin"
            | "macos"
            | "dragonfly"
            | "freebsd"
            | "hurd"
            | "illumos"
            | "ios"
            | "js"
            | "linux"
            | "nacl"
            | "netbsd"
            | "openbsd"
            | "plan9"
            | "solaris"
            | "windows"
            | "zos"
            | "wasip1"
    )
}

/// Whether `arch` is a GOARCH value or one of the aliases containerd normalizes
/// (`x86_64`, `aarch64`, `armhf`, …).
pub fn is_known_arch(arch: &str) -> bool {
    matches!(
        arch.to_ascii_lowercase().as_str(),
        "386"
            | "i386"
            | "amd64"
            | "x86_64"
            | "x86-64"
            | "amd64p32"
            | "arm"
            | "armhf"
            | "armel"
            | "armbe"
            | "arm64"
            | "aarch64"
            | "arm64be"
            | "ppc64"
            | "ppc64le"
            | "loong64"
            | "mips"
            | "mipsle"
            | "mips64"
            | "mips64le"
            | "mips64p32"
            | "mips64p32le"
            | "ppc"
            | "riscv"
            | "riscv64"
            | "s390"
            | "s390x"
            | "sparc"
            | "sparc64"
            | "wasm"
    )
}

/// Checks a `--platform` value's shape as containerd's parser does: one to three non-empty
/// `/`-separated parts, a single word being a known OS or architecture. The error is
/// Docker's.
pub fn check(text: &str) -> Result<(), String> {
    let parts: Vec<&str> = text.trim().split('/').collect();
    let ok = parts.len() <= 3
        && parts.iter().all(|p| !p.is_empty())
        && !matches!(parts.as_slice(), [w] if !is_known_os(w) && !is_known_arch(w));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "\"{text}\": unknown operating system or architecture: invalid argument"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_are_checked_as_containerd_parses_them() {
        for good in [
            "linux",
            "amd64",
            "x86_64",
            "linux/arm64",
            "linux/arm/v7",
            "windows",
        ] {
            assert_eq!(check(good), Ok(()), "{good}");
        }
        for bad in ["foo", "", "linux/", "/amd64", "a/b/c/d"] {
            assert_eq!(
                check(bad),
                Err(format!(
                    "\"{bad}\": unknown operating system or architecture: invalid argument"
                )),
                "{bad}"
            );
        }
    }
}
