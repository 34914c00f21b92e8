//! Removing an image the way `docker rmi` does, as a change to the index alone (the caller
//! saves the index, then collects the data nothing uses any more).
//!
//! Docker's rules (moby `daemon/images/image_delete.go`):
//! - By name: the name is removed. If the image keeps other names, that is all. A container
//!   using the image blocks the removal of its last name unless forced ("unable to remove
//!   repository reference … (must force)"), since the image would be left dangling. After the
//!   last name goes, the image is deleted too, quietly: if a container still uses it, the
//!   image just stays, dangling.
//! - By ID: with one name (or one tag and digests of the same repository) the names go and the
//!   image is deleted; with several, only `force` deletes it ("image is referenced in multiple
//!   repositories"). A stopped container blocks unless forced; a running one always ("cannot
//!   be forced").

use berth_core::{Digest, Reference};

use crate::error::{ImageError, Result};
use crate::refs::Index;

/// A container that uses an image (any state).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageUser {
    pub container: String,
    pub image: Digest,
    pub running: bool,
}

/// One line of `docker rmi`'s answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removal {
    Untagged(Reference),
    Deleted(Digest),
}

/// Docker's short form of an ID: 12 hex digits without the algorithm.
pub fn short_id(id: &str) -> &str {
    let hex = id.split_once(':').map_or(id, |(_, h)| h);
    &hex[..hex.len().min(12)]
}

/// Whether `name` is a prefix of `id`, with or without its `sha256:`.
pub fn is_id_prefix(id: &Digest, name: &str) -> bool {
    !name.is_empty() && (id.to_string().starts_with(name) || id.hex().starts_with(name))
}

/// Whether `name` is one of the stored names (so `rmi` removes a name, not the image).
fn names_a_reference(index: &Index, name: &str) -> bool {
    name.parse::<Reference>()
        .is_ok_and(|r| index.refs.contains_key(&r.to_string()))
}

/// All names are of one repository with at most one tag (the rest digests). Docker lets such
/// an image go with its name; several tags or repositories need `force`.
fn is_single_reference(refs: &[Reference]) -> bool {
    if refs.len() <= 1 {
        return refs.len() == 1;
    }
    let tags: Vec<&Reference> = refs.iter().filter(|r| r.digest.is_none()).collect();
    if tags.len() > 1 {
        return false;
    }
    let single = tags.first().copied().unwrap_or(&refs[0]);
    let mut canonical: Vec<String> = refs
        .iter()
        .filter(|r| r.digest.is_some())
        .map(Reference::name)
        .collect();
    canonical.sort();
    canonical.dedup();
    canonical.len() == 1 && canonical[0] == single.name()
}

#[derive(Debug)]
struct Conflict {
    hard: bool,
    /// A container is the reason (not a name).
    used: bool,
    message: String,
}

const HARD: u8 = 1;
const STOPPED: u8 = 2;
const REFERENCED: u8 = 4;

fn check(index: &Index, id: &Digest, users: &[ImageUser], mask: u8) -> Option<Conflict> {
    let of_image = |running: bool| {
        users
            .iter()
            .find(|u| u.image == *id && u.running == running)
    };
    if mask & HARD != 0 {
        if let Some(u) = of_image(true) {
            return Some(Conflict {
                hard: true,
                used: true,
                message: format!(
                    "image is being used by running container {}",
                    short_id(&u.container)
                ),
            });
        }
    }
    if mask & REFERENCED != 0 && !index.is_dangling(id) {
        return Some(Conflict {
            hard: false,
            used: false,
            message: "image is referenced in multiple repositories".to_owned(),
        });
    }
    if mask & STOPPED != 0 {
        if let Some(u) = of_image(false) {
            return Some(Conflict {
                hard: false,
                used: true,
                message: format!(
                    "image is being used by stopped container {}",
                    short_id(&u.container)
                ),
            });
        }
    }
    None
}

fn conflict_error(id: &Digest, c: Conflict) -> ImageError {
    ImageError::Conflict(format!(
        "conflict: unable to delete {} ({}) - {}",
        short_id(&id.to_string()),
        if c.hard {
            "cannot be forced"
        } else {
            "must be forced"
        },
        c.message
    ))
}

/// Removes what `docker rmi [-f] NAME` removes from `index`: `name` is what the user typed
/// and `id` the image it resolved to. Returns Docker's records, in Docker's order.
pub fn delete(
    index: &mut Index,
    name: &str,
    id: &Digest,
    force: bool,
    users: &[ImageUser],
) -> Result<Vec<Removal>> {
    let mut records = Vec::new();
    let refs = index.references_of(id);
    // By name, the image itself goes quietly: a conflict just leaves it (dangling). A name
    // wins over an ID prefix that looks the same (`bb` for an ID starting `bb…`), as it does
    // in resolution.
    let quiet = !is_id_prefix(id, name) || names_a_reference(index, name);
    if quiet {
        if !force && is_single_reference(&refs) {
            if let Some(u) = users.iter().find(|u| u.image == *id) {
                return Err(ImageError::Conflict(format!(
                    "conflict: unable to remove repository reference \"{name}\" (must force) - container {} is using its referenced image {}",
                    short_id(&u.container),
                    short_id(&id.to_string())
                )));
            }
        }
        let parsed: Reference = name
            .parse()
            .map_err(|e: berth_core::ReferenceError| ImageError::InvalidArgument(e.to_string()))?;
        if parsed.digest.is_some() && index.untag(&parsed).is_none() {
            // `name@digest` found the image through its manifest digest, not a stored name:
            // it stands for the repository's names of this image.
            for r in refs.iter().filter(|r| r.name() == parsed.name()) {
                index.untag(r);
                records.push(Removal::Untagged(r.clone()));
            }
        }
        records.push(Removal::Untagged(parsed.clone()));
        if parsed.digest.is_none() {
            index.untag(&parsed);
            // Digest names of a repository go with its last tag.
            let remaining = index.references_of(id);
            let tag_left = remaining
                .iter()
                .any(|r| r.digest.is_none() && r.name() == parsed.name());
            if !tag_left {
                for r in remaining
                    .iter()
                    .filter(|r| r.digest.is_some() && r.name() == parsed.name())
                {
                    index.untag(r);
                    records.push(Removal::Untagged(r.clone()));
                }
            }
        }
        if !index.is_dangling(id) {
            return Ok(records);
        }
    } else {
        if is_single_reference(&refs) {
            let mask = if force { HARD } else { HARD | STOPPED };
            if let Some(c) = check(index, id, users, mask) {
                return Err(conflict_error(id, c));
            }
            for r in refs {
                index.untag(&r);
                records.push(Removal::Untagged(r));
            }
        }
    }

    let mask = if force {
        HARD
    } else {
        HARD | STOPPED | REFERENCED
    };
    if let Some(c) = check(index, id, users, mask) {
        if quiet && (!index.is_dangling(id) || c.used) {
            // The name is gone; the image stays (dangling) for its container.
            return Ok(records);
        }
        return Err(conflict_error(id, c));
    }
    for r in index.remove_image(id) {
        records.push(Removal::Untagged(r));
    }
    records.push(Removal::Deleted(id.clone()));
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::refs::ImageRecord;

    const A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const CTR: &str = "0123abcd4567ef0123abcd4567ef0123abcd4567ef0123abcd4567ef01234567";

    fn index(names: &[&str]) -> (Index, Digest) {
        let id: Digest = A.parse().unwrap();
        let mut index = Index::default();
        index.images.insert(
            id.clone(),
            ImageRecord {
                manifest: id.clone(),
                added: String::new(),
                last_tag_time: None,
            },
        );
        for n in names {
            index.tag(&n.parse().unwrap(), &id);
        }
        (index, id)
    }

    fn user(id: &Digest, running: bool) -> Vec<ImageUser> {
        vec![ImageUser {
            container: CTR.to_owned(),
            image: id.clone(),
            running,
        }]
    }

    fn shown(records: &[Removal]) -> Vec<String> {
        records
            .iter()
            .map(|r| match r {
                Removal::Untagged(r) => format!("Untagged: {}", r.familiar()),
                Removal::Deleted(d) => format!("Deleted: {}", short_id(&d.to_string())),
            })
            .collect()
    }

    #[test]
    fn one_of_several_names_is_only_untagged() {
        let (mut ix, id) = index(&["bb", "bb2"]);
        let r = delete(&mut ix, "bb", &id, false, &[]).unwrap();
        assert_eq!(shown(&r), ["Untagged: bb:latest"]);
        assert!(ix.images.contains_key(&id));
        let r = delete(&mut ix, "bb2:latest", &id, false, &[]).unwrap();
        assert_eq!(shown(&r), ["Untagged: bb2:latest", "Deleted: aaaaaaaaaaaa"]);
        assert!(ix.images.is_empty() && ix.refs.is_empty());
    }

    #[test]
    fn a_container_keeps_the_last_name() {
        let (mut ix, id) = index(&["bb"]);
        let before = ix.clone();
        let err = delete(&mut ix, "bb", &id, false, &user(&id, false)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "conflict: unable to remove repository reference \"bb\" (must force) - container 0123abcd4567 is using its referenced image aaaaaaaaaaaa"
        );
        assert_eq!(ix, before);
        // Forced, a stopped container's image goes; a running one's stays, dangling.
        let r = delete(&mut ix, "bb", &id, true, &user(&id, false)).unwrap();
        assert_eq!(shown(&r), ["Untagged: bb:latest", "Deleted: aaaaaaaaaaaa"]);
        let (mut ix, id) = index(&["bb"]);
        let r = delete(&mut ix, "bb", &id, true, &user(&id, true)).unwrap();
        assert_eq!(shown(&r), ["Untagged: bb:latest"]);
        assert!(ix.images.contains_key(&id) && ix.is_dangling(&id));
    }

    #[test]
    fn a_name_that_looks_like_the_id_prefix_is_a_name() {
        // The image's ID starts `aa…`; `rmi aa` means the name `aa:latest`.
        let (mut ix, id) = index(&["aa"]);
        let err = delete(&mut ix, "aa", &id, false, &user(&id, false)).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("conflict: unable to remove repository reference \"aa\""),
            "{err}"
        );
        let (mut ix, id) = index(&["aa", "other"]);
        let r = delete(&mut ix, "aa", &id, false, &[]).unwrap();
        assert_eq!(shown(&r), ["Untagged: aa:latest"]);
    }

    #[test]
    fn by_id_follows_docker() {
        let (mut ix, id) = index(&["bb"]);
        let err = delete(&mut ix, "aaaa", &id, false, &user(&id, false)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "conflict: unable to delete aaaaaaaaaaaa (must be forced) - image is being used by stopped container 0123abcd4567"
        );
        let err = delete(&mut ix, "aaaa", &id, true, &user(&id, true)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "conflict: unable to delete aaaaaaaaaaaa (cannot be forced) - image is being used by running container 0123abcd4567"
        );
        assert!(matches!(err, ImageError::Conflict(_)));
        let r = delete(&mut ix, A, &id, false, &[]).unwrap();
        assert_eq!(shown(&r), ["Untagged: bb:latest", "Deleted: aaaaaaaaaaaa"]);

        let (mut ix, id) = index(&["bb", "other"]);
        let err = delete(&mut ix, "aaaaaaaaaaaa", &id, false, &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "conflict: unable to delete aaaaaaaaaaaa (must be forced) - image is referenced in multiple repositories"
        );
        let r = delete(&mut ix, "aaaaaaaaaaaa", &id, true, &[]).unwrap();
        assert_eq!(
            shown(&r),
            [
                "Untagged: bb:latest",
                "Untagged: other:latest",
                "Deleted: aaaaaaaaaaaa"
            ]
        );
    }

    #[test]
    fn digests_go_with_the_last_tag_of_their_repository() {
        let d = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
        let (mut ix, id) = index(&["bb", &format!("bb@{d}")]);
        assert!(is_single_reference(&ix.references_of(&id)));
        let r = delete(&mut ix, "bb", &id, false, &[]).unwrap();
        assert_eq!(
            shown(&r),
            [
                "Untagged: bb:latest".to_owned(),
                format!("Untagged: bb@{d}"),
                "Deleted: aaaaaaaaaaaa".to_owned()
            ]
        );
    }

    #[test]
    fn single_reference_rule() {
        let r = |v: &[&str]| -> Vec<Reference> { v.iter().map(|s| s.parse().unwrap()).collect() };
        let d = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
        assert!(!is_single_reference(&[]));
        assert!(is_single_reference(&r(&["a"])));
        assert!(!is_single_reference(&r(&["a", "b"])));
        assert!(!is_single_reference(&r(&["a:1", "a:2"])));
        assert!(is_single_reference(&r(&["a", &format!("a@{d}")])));
        assert!(!is_single_reference(&r(&["a", &format!("b@{d}")])));
    }
}
