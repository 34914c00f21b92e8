//! Checks of clap command trees whose subcommands are built only when run
//! (`#[command(defer = true)]`).

/// The subcommands (by path, e.g. `berth container run`) whose help text differs once their
/// deferred arguments are added: a doc comment on a flattened argument struct comes last and
/// replaces the variant's own text. Empty when none does; subcommands without any help text
/// are named too.
pub fn help_texts_changed_by_defer(cmd: clap::Command) -> Vec<String> {
    fn about_of(cmd: &clap::Command, path: &str) -> Vec<(String, Option<String>)> {
        let path = format!("{path}{}", cmd.get_name());
        let mut out = vec![(path.clone(), cmd.get_about().map(|a| a.to_string()))];
        for sub in cmd.get_subcommands() {
            out.extend(about_of(sub, &format!("{path} ")));
        }
        out
    }
    let eager = about_of(&cmd, "");
    let mut built = cmd;
    built.build();
    let deferred: std::collections::HashMap<_, _> = about_of(&built, "").into_iter().collect();
    eager
        .into_iter()
        .skip(1) // the top command's own text is not deferred
        .filter(|(name, about)| about.is_none() || deferred.get(name) != Some(about))
        .map(|(name, about)| format!("{name}: {about:?} -> {:?}", deferred.get(&name)))
        .collect()
}
