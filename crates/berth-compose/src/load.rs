//! From command-line options to a [`Project`]: finding the compose files, the project
//! directory and name, `.env`, reading each file (YAML, interpolation, `include`, the
//! schema's canonical form, `extends`), merging them, applying profiles, normalizing as
//! compose-go does (implicit dependencies, the default network, names of resources,
//! env files folded into `environment`), and checking references between objects.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use indexmap::IndexMap;

use crate::dotenv;
use crate::interp::{self, InterpError};
use crate::merge;
use crate::model::Project;
use crate::schema::{self, Context, Walk};
use crate::spec;
use crate::yaml::{self, Node, PathStep, Pos, Value};

/// The names compose looks for, in order, and their override files.
pub const DEFAULT_FILES: [&str; 4] = [
    "compose.yaml",
    "compose.yml",
    "docker-compose.yml",
    "docker-compose.yaml",
];
pub const OVERRIDE_FILES: [&str; 4] = [
    "compose.override.yml",
    "compose.override.yaml",
    "docker-compose.override.yml",
    "docker-compose.override.yaml",
];

/// What the command line says about the project.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `-f` (in order); empty: `COMPOSE_FILE`, else the default names.
    pub files: Vec<PathBuf>,
    /// `-p`.
    pub project_name: Option<String>,
    /// `--project-directory`.
    pub project_directory: Option<PathBuf>,
    /// `--env-file` (in order); empty: `<project dir>/.env`.
    pub env_files: Vec<PathBuf>,
    /// `--profile`; empty: `COMPOSE_PROFILES`.
    pub profiles: Vec<String>,
    /// The shell's environment.
    pub environment: BTreeMap<String, String>,
    pub cwd: PathBuf,
}

/// Why a project could not be loaded. The message names file, line and key where the
/// problem has them.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct LoadError {
    pub message: String,
}

impl LoadError {
    fn new(message: impl Into<String>) -> LoadError {
        LoadError {
            message: message.into(),
        }
    }
    fn at(pos: &Pos, message: impl std::fmt::Display) -> LoadError {
        LoadError::new(format!("{pos}: {message}"))
    }
}

impl From<schema::SchemaError> for LoadError {
    fn from(e: schema::SchemaError) -> LoadError {
        LoadError::new(e.to_string())
    }
}

/// A loaded project and what the loader had to say on the way.
#[derive(Debug)]
pub struct Loaded {
    pub project: Project,
    pub warnings: Vec<String>,
}

/// The loader's running state: environment and warnings.
struct Loader {
    env: BTreeMap<String, String>,
    warnings: Vec<String>,
    home: Option<PathBuf>,
}

pub fn load(opts: &Options) -> Result<Loaded, LoadError> {
    let mut warnings = Vec::new();
    let files = find_files(opts, &mut warnings)?;
    let working_dir = match &opts.project_directory {
        Some(d) => absolute_from(&opts.cwd, d),
        None => files[0]
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| opts.cwd.clone()),
    };
    let env = environment(opts, &working_dir)?;
    let home = opts.environment.get("HOME").map(PathBuf::from);
    let mut loader = Loader {
        env,
        warnings,
        home,
    };

    // The name first: interpolation may use COMPOSE_PROJECT_NAME.
    let mut raw = Vec::new();
    for f in &files {
        raw.push(read_yaml(f)?);
    }
    let name = loader.project_name(opts, &raw, &working_dir)?;
    loader
        .env
        .entry("COMPOSE_PROJECT_NAME".to_owned())
        .or_insert_with(|| name.clone());

    let ctx = Context {
        base_dir: working_dir.clone(),
        home: loader.home.clone(),
    };
    let mut merged: Option<Node> = None;
    for (file, tree) in files.iter().zip(raw) {
        let canonical = loader.read_file(file, tree, &ctx)?;
        merged = Some(match merged {
            None => canonical,
            Some(base) => merge::merge(base, canonical, &mut Vec::new()),
        });
    }
    let mut tree = merged.unwrap_or_else(|| Node::new(Value::Map(IndexMap::new()), Pos::made()));
    merge::unique(&mut tree, &mut Vec::new());

    let profiles = active_profiles(opts, &loader.env);
    let mut project = loader.finish(tree, name, working_dir, files, &profiles)?;
    project.environment = loader.env.clone();
    Ok(Loaded {
        project,
        warnings: loader.warnings,
    })
}

fn absolute_from(cwd: &Path, p: &Path) -> PathBuf {
    PathBuf::from(schema::clean(&cwd.join(p)))
}

fn find_files(opts: &Options, warnings: &mut Vec<String>) -> Result<Vec<PathBuf>, LoadError> {
    let named: Vec<PathBuf> = if !opts.files.is_empty() {
        opts.files.clone()
    } else if let Some(list) = opts
        .environment
        .get("COMPOSE_FILE")
        .filter(|s| !s.is_empty())
    {
        let sep = opts
            .environment
            .get("COMPOSE_PATH_SEPARATOR")
            .cloned()
            .unwrap_or_else(|| ":".to_owned());
        list.split(sep.as_str()).map(PathBuf::from).collect()
    } else {
        Vec::new()
    };
    if !named.is_empty() {
        let files: Vec<PathBuf> = named.iter().map(|f| absolute_from(&opts.cwd, f)).collect();
        for f in &files {
            if !f.exists() {
                return Err(LoadError::new(format!(
                    "open {}: no such file or directory",
                    f.display()
                )));
            }
        }
        return Ok(files);
    }
    // Search the working directory, then its parents.
    let mut dir = Some(opts.cwd.as_path());
    while let Some(d) = dir {
        let found: Vec<&str> = DEFAULT_FILES
            .iter()
            .copied()
            .filter(|n| d.join(n).is_file())
            .collect();
        if let Some(first) = found.first() {
            if found.len() > 1 {
                warnings.push(format!(
                    "Found multiple config files with supported names: {}\nUsing {}",
                    found
                        .iter()
                        .map(|n| d.join(n).display().to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                    d.join(first).display()
                ));
            }
            let mut files = vec![d.join(first)];
            if let Some(o) = OVERRIDE_FILES.iter().find(|n| d.join(n).is_file()) {
                files.push(d.join(o));
            }
            return Ok(files);
        }
        dir = d.parent();
    }
    Err(LoadError::new("no configuration file provided: not found"))
}

/// The variables interpolation sees: the env files, then the shell over them.
fn environment(opts: &Options, working_dir: &Path) -> Result<BTreeMap<String, String>, LoadError> {
    let files: Vec<PathBuf> = if opts.env_files.is_empty() {
        let default = working_dir.join(".env");
        if default.is_file() {
            vec![default]
        } else {
            Vec::new()
        }
    } else {
        opts.env_files
            .iter()
            .map(|f| absolute_from(&opts.cwd, f))
            .collect()
    };
    let mut env = BTreeMap::new();
    for f in files {
        let vars = read_env_file(&f, &|k| {
            opts.environment.get(k).or_else(|| env.get(k)).cloned()
        })?;
        env.extend(vars);
    }
    env.extend(opts.environment.clone());
    Ok(env)
}

fn read_env_file(
    path: &Path,
    outside: &dyn Fn(&str) -> Option<String>,
) -> Result<IndexMap<String, String>, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        LoadError::new(format!(
            "env file {} not found: {}",
            path.display(),
            e.to_string().to_lowercase()
        ))
    })?;
    dotenv::parse(&text, outside)
        .map_err(|e| LoadError::new(format!("failed to read {}: {e}", path.display())))
}

fn read_yaml(path: &Path) -> Result<Node, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        LoadError::new(format!(
            "open {}: {}",
            path.display(),
            e.to_string().to_lowercase()
        ))
    })?;
    let tree = yaml::parse(&text, path).map_err(|e| LoadError::new(e.to_string()))?;
    if !matches!(tree.value, Value::Map(_)) {
        return Err(LoadError::at(
            &tree.at,
            "top-level object must be a mapping",
        ));
    }
    Ok(tree)
}

fn active_profiles(opts: &Options, env: &BTreeMap<String, String>) -> BTreeSet<String> {
    let mut profiles: BTreeSet<String> = opts.profiles.iter().cloned().collect();
    if profiles.is_empty() {
        if let Some(p) = env.get("COMPOSE_PROFILES") {
            profiles.extend(
                p.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned),
            );
        }
    }
    profiles
}

/// Whether `name` is a valid project name.
pub fn valid_project_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

/// Lowercases and drops what a project name cannot hold, as compose-go does for names
/// taken from `name:` or a directory.
pub fn normalize_project_name(s: &str) -> String {
    let lower = s.to_lowercase();
    let kept: String = lower
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '_')
        .collect();
    kept.trim_start_matches(['-', '_']).to_owned()
}

fn invalid_name(name: &str) -> LoadError {
    LoadError::new(format!(
        "invalid project name {name:?}: must consist only of lowercase alphanumeric characters, hyphens, and underscores as well as start with a letter or number"
    ))
}

impl Loader {
    fn lookup(&self) -> impl Fn(&str) -> Option<String> + '_ {
        |k: &str| self.env.get(k).cloned()
    }

    fn project_name(
        &mut self,
        opts: &Options,
        raw: &[Node],
        working_dir: &Path,
    ) -> Result<String, LoadError> {
        if let Some(p) = &opts.project_name {
            return if valid_project_name(p) {
                Ok(p.clone())
            } else {
                Err(invalid_name(p))
            };
        }
        if let Some(p) = self
            .env
            .get("COMPOSE_PROJECT_NAME")
            .filter(|s| !s.is_empty())
        {
            return if valid_project_name(p) {
                Ok(p.clone())
            } else {
                Err(invalid_name(p))
            };
        }
        // The last file that names the project wins.
        let mut from_file = None;
        for tree in raw {
            if let Some(n) = tree.get("name").and_then(Node::as_str) {
                let i = interp::interpolate(n, &self.lookup())
                    .map_err(|e| LoadError::at(&tree.at, format!("name: {e}")))?;
                from_file = Some(i.text);
            }
        }
        if let Some(n) = from_file.filter(|n| !n.is_empty()) {
            return Ok(normalize_project_name(&n));
        }
        let base = working_dir
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(normalize_project_name(&base))
    }

    /// One file: interpolated, includes applied, in canonical form, extends resolved.
    fn read_file(&mut self, file: &Path, tree: Node, ctx: &Context) -> Result<Node, LoadError> {
        let mut tree = tree;
        self.interpolate(&mut tree, &mut Vec::new())?;
        let includes = tree.as_map_mut().and_then(|m| m.shift_remove("include"));
        let mut canonical = schema::object(&tree, spec::TOP, ctx, &mut Walk::default())?;
        self.extends(&mut canonical, file, ctx, &mut Vec::new())?;
        if let Some(includes) = includes {
            self.include(&mut canonical, &includes, ctx)?;
        }
        if let Some(m) = canonical.as_map_mut() {
            m.shift_remove("version");
            if tree_has_version(&tree) {
                self.warnings.push(format!(
                    "{}: the attribute `version` is obsolete, it will be ignored, please remove it to avoid potential confusion",
                    file.display()
                ));
            }
        }
        Ok(canonical)
    }

    /// Interpolates every string value (keys are left alone).
    fn interpolate(&mut self, node: &mut Node, path: &mut Vec<String>) -> Result<(), LoadError> {
        match &mut node.value {
            Value::Str(s) => {
                if !s.contains('$') {
                    return Ok(());
                }
                let result = {
                    let lookup = |k: &str| self.env.get(k).cloned();
                    interp::interpolate(s, &lookup)
                };
                match result {
                    Ok(i) => {
                        for name in i.unset {
                            self.warnings.push(format!(
                                "The \"{name}\" variable is not set. Defaulting to a blank string."
                            ));
                        }
                        *s = i.text;
                    }
                    Err(InterpError::Invalid) => {
                        return Err(LoadError::at(
                            &node.at,
                            format!(
                                "{}: invalid interpolation format {s:?}; you may need to escape any $ with another $",
                                path.join(".")
                            ),
                        ))
                    }
                    Err(e) => {
                        return Err(LoadError::at(
                            &node.at,
                            format!("error while interpolating {}: {e}", path.join(".")),
                        ))
                    }
                }
            }
            Value::Seq(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    path.push(format!("[{i}]"));
                    self.interpolate(item, path)?;
                    path.pop();
                }
            }
            Value::Map(m) => {
                for (k, v) in m.iter_mut() {
                    path.push(k.clone());
                    self.interpolate(v, path)?;
                    path.pop();
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Resolves `extends` in every service of a canonical file.
    fn extends(
        &mut self,
        tree: &mut Node,
        file: &Path,
        ctx: &Context,
        chain: &mut Vec<(PathBuf, String)>,
    ) -> Result<(), LoadError> {
        let names: Vec<String> = tree
            .get("services")
            .and_then(Node::as_map)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        for name in names {
            let resolved = self.resolve_service(tree, &name, file, ctx, chain)?;
            if let Some(services) = tree
                .as_map_mut()
                .and_then(|m| m.get_mut("services"))
                .and_then(Node::as_map_mut)
            {
                services.insert(name, resolved);
            }
        }
        Ok(())
    }

    fn resolve_service(
        &mut self,
        tree: &Node,
        name: &str,
        file: &Path,
        ctx: &Context,
        chain: &mut Vec<(PathBuf, String)>,
    ) -> Result<Node, LoadError> {
        let service = tree
            .get("services")
            .and_then(|s| s.get(name))
            .cloned()
            .ok_or_else(|| {
                LoadError::new(format!(
                    "cannot extend service {:?} in {}: service {name:?} not found",
                    chain.last().map(|c| c.1.as_str()).unwrap_or(name),
                    file.display()
                ))
            })?;
        let Some(ext) = service.get("extends").cloned() else {
            return Ok(service);
        };
        let key = (file.to_path_buf(), name.to_owned());
        if chain.contains(&key) {
            let mut lines = vec!["Circular reference:".to_owned()];
            for (i, (f, s)) in chain.iter().chain(std::iter::once(&key)).enumerate() {
                lines.push(if i == 0 {
                    format!("  {s} in {}", f.display())
                } else {
                    format!("  extends {s} in {}", f.display())
                });
            }
            return Err(LoadError::new(lines.join("\n")));
        }
        chain.push(key);
        let base_name = ext
            .get("service")
            .and_then(Node::as_str)
            .unwrap_or_default()
            .to_owned();
        let base = match ext.get("file").and_then(Node::as_str) {
            Some(other) => {
                let other_path = PathBuf::from(schema::absolute(other, ctx));
                let other_tree = read_yaml(&other_path)?;
                let other_ctx = Context {
                    base_dir: other_path
                        .parent()
                        .map(Path::to_path_buf)
                        .unwrap_or_default(),
                    home: ctx.home.clone(),
                };
                let mut other_tree = other_tree;
                self.interpolate(&mut other_tree, &mut Vec::new())?;
                if let Some(m) = other_tree.as_map_mut() {
                    m.shift_remove("include");
                }
                let canonical =
                    schema::object(&other_tree, spec::TOP, &other_ctx, &mut Walk::default())?;
                self.resolve_service(&canonical, &base_name, &other_path, &other_ctx, chain)
                    .map_err(|e| {
                        if e.message.contains("not found") && !e.message.contains("Circular") {
                            LoadError::new(format!(
                                "cannot extend service {name:?} in {}: service {base_name:?} not found",
                                file.display()
                            ))
                        } else {
                            e
                        }
                    })?
            }
            None => self
                .resolve_service(tree, &base_name, file, ctx, chain)
                .map_err(|e| {
                    if e.message.contains("not found") && !e.message.contains("Circular") {
                        LoadError::new(format!(
                            "cannot extend service {name:?} in {}: service {base_name:?} not found",
                            file.display()
                        ))
                    } else {
                        e
                    }
                })?,
        };
        chain.pop();
        let mut local = service;
        if let Some(m) = local.as_map_mut() {
            m.shift_remove("extends");
        }
        let mut base = base;
        if let Some(m) = base.as_map_mut() {
            m.shift_remove("extends");
        }
        let mut path = vec!["services".to_owned(), name.to_owned()];
        Ok(merge::merge(base, local, &mut path))
    }

    /// `include`: each entry is loaded as a project of its own and its resources added.
    fn include(
        &mut self,
        tree: &mut Node,
        includes: &Node,
        ctx: &Context,
    ) -> Result<(), LoadError> {
        let Value::Seq(entries) = &includes.value else {
            return Err(LoadError::at(&includes.at, "include: must be a list"));
        };
        for entry in entries {
            let (paths, project_dir, env_files): (Vec<String>, Option<String>, Vec<String>) =
                match &entry.value {
                    Value::Str(s) => (vec![s.clone()], None, Vec::new()),
                    Value::Map(m) => {
                        let list = |k: &str| -> Vec<String> {
                            match m.get(k).map(|n| &n.value) {
                                Some(Value::Str(s)) => vec![s.clone()],
                                Some(Value::Seq(items)) => items
                                    .iter()
                                    .filter_map(|i| i.as_str().map(str::to_owned))
                                    .collect(),
                                _ => Vec::new(),
                            }
                        };
                        (
                            list("path"),
                            m.get("project_directory")
                                .and_then(Node::as_str)
                                .map(str::to_owned),
                            list("env_file"),
                        )
                    }
                    _ => {
                        return Err(LoadError::at(
                            &entry.at,
                            "include: entries must be paths or mappings",
                        ))
                    }
                };
            let files: Vec<PathBuf> = paths
                .iter()
                .map(|p| PathBuf::from(schema::absolute(p, ctx)))
                .collect();
            let Some(first) = files.first() else { continue };
            let dir = match &project_dir {
                Some(d) => PathBuf::from(schema::absolute(d, ctx)),
                None => first.parent().map(Path::to_path_buf).unwrap_or_default(),
            };
            let opts = Options {
                files: files.clone(),
                project_name: None,
                project_directory: Some(dir.clone()),
                env_files: env_files
                    .iter()
                    .map(|e| PathBuf::from(schema::absolute(e, ctx)))
                    .collect(),
                profiles: Vec::new(),
                environment: self.env.clone(),
                cwd: ctx.base_dir.clone(),
            };
            let env = environment(&opts, &dir)?;
            let saved = std::mem::replace(&mut self.env, env);
            let sub_ctx = Context {
                base_dir: dir.clone(),
                home: ctx.home.clone(),
            };
            let mut merged: Option<Node> = None;
            let mut result = Ok(());
            for f in &files {
                match read_yaml(f).and_then(|t| self.read_file(f, t, &sub_ctx)) {
                    Ok(c) => {
                        merged = Some(match merged {
                            None => c,
                            Some(b) => merge::merge(b, c, &mut Vec::new()),
                        })
                    }
                    Err(e) => {
                        result = Err(e);
                        break;
                    }
                }
            }
            self.env = saved;
            result?;
            let Some(included) = merged else { continue };
            for section in ["services", "networks", "volumes", "secrets", "configs"] {
                let Some(Value::Map(items)) = included.get(section).map(|n| n.value.clone()) else {
                    continue;
                };
                let top = tree.as_map_mut().expect("top level is a mapping");
                let target = top
                    .entry(section.to_owned())
                    .or_insert_with(|| Node::new(Value::Map(IndexMap::new()), included.at.clone()));
                let Some(target) = target.as_map_mut() else {
                    continue;
                };
                for (k, v) in items {
                    match target.get(&k) {
                        Some(existing) if existing.to_json() != v.to_json() => {
                            return Err(LoadError::new(format!(
                                "imported compose file {} defines conflicting {section} {k}",
                                first.display()
                            )))
                        }
                        Some(_) => {}
                        None => {
                            target.insert(k, v);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Profiles, normalization, names, references; then the typed model.
    fn finish(
        &mut self,
        mut tree: Node,
        name: String,
        working_dir: PathBuf,
        files: Vec<PathBuf>,
        profiles: &BTreeSet<String>,
    ) -> Result<Project, LoadError> {
        let top = tree.as_map_mut().expect("top level is a mapping");
        top.shift_remove("name");
        let mut services = match top.shift_remove("services") {
            Some(Node {
                value: Value::Map(m),
                ..
            }) => m,
            _ => IndexMap::new(),
        };
        // Profiles: a service with profiles runs only when one of them is active.
        let mut disabled = IndexMap::new();
        let all = profiles.contains("*");
        services.retain(|k, svc| {
            let own: Vec<String> = match svc.get("profiles").map(|p| &p.value) {
                Some(Value::Seq(items)) => items
                    .iter()
                    .filter_map(|i| i.as_str().map(str::to_owned))
                    .collect(),
                _ => Vec::new(),
            };
            let enabled = own.is_empty() || all || own.iter().any(|p| profiles.contains(p));
            if !enabled {
                disabled.insert(k.clone(), svc.clone());
            }
            enabled
        });
        for (svc_name, svc) in services.iter_mut() {
            self.normalize_service(svc_name, svc)?;
        }
        // Dependencies on disabled services: fine when not required.
        for (svc_name, svc) in services.iter_mut() {
            if let Some(deps) = svc
                .as_map_mut()
                .and_then(|m| m.get_mut("depends_on"))
                .and_then(Node::as_map_mut)
            {
                let mut problem = None;
                for (dep, d) in deps.iter() {
                    if disabled.contains_key(dep) {
                        let required = !matches!(
                            d.get("required").map(|r| &r.value),
                            Some(Value::Bool(false))
                        );
                        if required {
                            problem = Some((dep.clone(), d.at.clone()));
                        }
                    }
                }
                if let Some((dep, at)) = problem {
                    return Err(LoadError::at(&at, format!(
                        "service {svc_name:?} depends on undefined service {dep:?}: invalid compose project"
                    )));
                }
            }
        }
        let top = tree.as_map_mut().expect("top level is a mapping");
        // The implicit default network, when a service uses it.
        let uses_default = services.values().any(|s| {
            s.get("networks")
                .and_then(Node::as_map)
                .is_some_and(|n| n.contains_key("default"))
        });
        let networks = top
            .entry("networks".to_owned())
            .or_insert_with(|| Node::new(Value::Map(IndexMap::new()), Pos::made()));
        if let Some(n) = networks.as_map_mut() {
            if uses_default && !n.contains_key("default") {
                n.insert("default".to_owned(), Node::new(Value::Null, Pos::made()));
            }
        }
        self.check_references(&services, top)?;
        drop_unused(&services, top);
        for section in ["networks", "volumes", "secrets", "configs"] {
            if let Some(items) = top.get_mut(section).and_then(Node::as_map_mut) {
                for (key, item) in items.iter_mut() {
                    if let Value::Null = item.value {
                        item.value = Value::Map(IndexMap::new());
                    }
                    let Some(m) = item.as_map_mut() else { continue };
                    if !m.contains_key("name") {
                        let external =
                            matches!(m.get("external").map(|e| &e.value), Some(Value::Bool(true)));
                        let n = if external {
                            key.clone()
                        } else {
                            format!("{name}_{key}")
                        };
                        m.insert("name".to_owned(), Node::new(Value::Str(n), Pos::made()));
                    }
                }
            }
        }
        check_cycles(&services)?;

        // The typed model.
        let decode_map =
            |section: &str, top: &IndexMap<String, Node>| -> Result<serde_json::Value, LoadError> {
                Ok(top
                    .get(section)
                    .map(Node::to_json)
                    .unwrap_or_else(|| serde_json::json!({})))
            };
        let mut project = Project {
            name,
            working_dir,
            files,
            ..Default::default()
        };
        for (k, svc) in &services {
            let mut s: crate::model::Service = serde_json::from_value(svc.to_json())
                .map_err(|e| LoadError::at(&svc.at, format!("services.{k}: {e}")))?;
            s.name = k.clone();
            project.services.insert(k.clone(), s);
        }
        for (k, svc) in &disabled {
            if let Ok(mut s) = serde_json::from_value::<crate::model::Service>(svc.to_json()) {
                s.name = k.clone();
                project.disabled.insert(k.clone(), s);
            }
        }
        project.networks = serde_json::from_value(decode_map("networks", top)?)
            .map_err(|e| LoadError::new(format!("networks: {e}")))?;
        project.volumes = serde_json::from_value(decode_map("volumes", top)?)
            .map_err(|e| LoadError::new(format!("volumes: {e}")))?;
        project.secrets = serde_json::from_value(decode_map("secrets", top)?)
            .map_err(|e| LoadError::new(format!("secrets: {e}")))?;
        project.configs = serde_json::from_value(decode_map("configs", top)?)
            .map_err(|e| LoadError::new(format!("configs: {e}")))?;
        for (k, v) in top.iter() {
            if k.starts_with("x-") {
                project.extensions.insert(k.clone(), v.to_json());
            }
        }
        for (k, s) in &project.services {
            if s.image.is_empty() && s.build.is_none() {
                return Err(LoadError::new(format!(
                    "service {k:?} has neither an image nor a build context specified: invalid compose project"
                )));
            }
            let scale = s
                .scale
                .or(s.deploy.as_ref().and_then(|d| d.replicas))
                .unwrap_or(1);
            if !s.container_name.is_empty() && scale > 1 {
                return Err(LoadError::new(format!(
                    "services.scale: can't set container_name and {k} as container name must be unique: invalid compose project"
                )));
            }
        }
        Ok(project)
    }

    /// compose-go's normalization of one service.
    fn normalize_service(&mut self, name: &str, svc: &mut Node) -> Result<(), LoadError> {
        let at = svc.at.clone();
        let Some(m) = svc.as_map_mut() else {
            return Err(LoadError::at(
                &at,
                format!("services.{name}: must be a mapping"),
            ));
        };
        m.retain(|k, _| !k.starts_with("x-"));
        let s = |v: &str| Node::new(Value::Str(v.to_owned()), at.clone());
        let b = |v: bool| Node::new(Value::Bool(v), at.clone());
        if m.get("pull_policy").and_then(Node::as_str) == Some("if_not_present") {
            m.insert("pull_policy".into(), s("missing"));
        }
        if let Some(p) = m.get("pull_policy").and_then(Node::as_str) {
            if !valid_pull_policy(p) {
                let pos = m["pull_policy"].at.clone();
                return Err(LoadError::at(&pos, format!(
                    "services.{name}.pull_policy {p:?} does not match pattern 'always|never|build|if_not_present|missing|refresh|daily|weekly|every_([0-9]+[wdhms])+'"
                )));
            }
        }
        // Variables named without a value take the environment's, where it has one.
        let env = self.env.clone();
        if let Some(environment) = m.get_mut("environment").and_then(Node::as_map_mut) {
            for (k, v) in environment.iter_mut() {
                if let Value::Null = v.value {
                    if let Some(val) = env.get(k) {
                        v.value = Value::Str(val.clone());
                    }
                }
            }
        }
        if let Some(args) = m
            .get_mut("build")
            .and_then(Node::as_map_mut)
            .and_then(|b| b.get_mut("args"))
            .and_then(Node::as_map_mut)
        {
            args.retain(|k, v| match v.value {
                Value::Null => match env.get(k) {
                    Some(val) => {
                        v.value = Value::Str(val.clone());
                        true
                    }
                    None => false,
                },
                _ => true,
            });
        }
        // env_file folded into environment (explicit keys win, later files win).
        if let Some(Node {
            value: Value::Seq(files),
            ..
        }) = m.shift_remove("env_file")
        {
            let mut from_files: IndexMap<String, String> = IndexMap::new();
            for f in files {
                let path = f
                    .get("path")
                    .and_then(Node::as_str)
                    .unwrap_or_default()
                    .to_owned();
                let required = !matches!(
                    f.get("required").map(|r| &r.value),
                    Some(Value::Bool(false))
                );
                let p = Path::new(&path);
                if !p.exists() {
                    if required {
                        return Err(LoadError::new(format!(
                            "env file {path} not found: stat {path}: no such file or directory"
                        )));
                    }
                    continue;
                }
                let lookup = |k: &str| env.get(k).cloned();
                from_files.extend(read_env_file(p, &lookup)?);
            }
            let environment = m
                .entry("environment".to_owned())
                .or_insert_with(|| Node::new(Value::Map(IndexMap::new()), at.clone()));
            if let Some(e) = environment.as_map_mut() {
                for (k, v) in from_files {
                    e.entry(k)
                        .or_insert_with(|| Node::new(Value::Str(v), at.clone()));
                }
            }
        }
        // label_file stays in the model: v2 keeps it in what it hashes for `up` (and
        // `config` leaves it out of what it prints).
        if let Some(Node {
            value: Value::Seq(files),
            ..
        }) = m.get("label_file").cloned()
        {
            let mut from_files: IndexMap<String, String> = IndexMap::new();
            for f in files {
                let path = f.as_str().unwrap_or_default().to_owned();
                from_files.extend(read_env_file(Path::new(&path), &|_| None)?);
            }
            let labels = m
                .entry("labels".to_owned())
                .or_insert_with(|| Node::new(Value::Map(IndexMap::new()), at.clone()));
            if let Some(l) = labels.as_map_mut() {
                for (k, v) in from_files {
                    l.entry(k)
                        .or_insert_with(|| Node::new(Value::Str(v), at.clone()));
                }
            }
        }
        // Implicit dependencies.
        let mut implicit: Vec<(String, bool)> = Vec::new();
        if let Some(Value::Seq(links)) = m.get("links").map(|l| &l.value) {
            for l in links {
                if let Some(t) = l.as_str() {
                    implicit.push((t.split(':').next().unwrap_or(t).to_owned(), true));
                }
            }
        }
        for ns in ["network_mode", "ipc", "pid", "uts", "cgroup"] {
            if let Some(r) = m
                .get(ns)
                .and_then(Node::as_str)
                .and_then(|r| r.strip_prefix("service:"))
            {
                implicit.push((r.to_owned(), true));
            }
        }
        if let Some(Value::Seq(from)) = m.get("volumes_from").map(|v| &v.value) {
            for v in from {
                if let Some(t) = v.as_str().filter(|t| !t.starts_with("container:")) {
                    implicit.push((t.split(':').next().unwrap_or(t).to_owned(), false));
                }
            }
        }
        if !implicit.is_empty() {
            let deps = m
                .entry("depends_on".to_owned())
                .or_insert_with(|| Node::new(Value::Map(IndexMap::new()), at.clone()));
            if let Some(d) = deps.as_map_mut() {
                for (svc, restart) in implicit {
                    d.entry(svc).or_insert_with(|| {
                        let mut dep = IndexMap::new();
                        dep.insert("condition".to_owned(), s("service_started"));
                        if restart {
                            dep.insert("restart".to_owned(), b(true));
                        }
                        dep.insert("required".to_owned(), b(true));
                        Node::new(Value::Map(dep), at.clone())
                    });
                }
            }
        }
        // Mount targets cleaned as paths.
        if let Some(Value::Seq(volumes)) = m.get_mut("volumes").map(|v| &mut v.value) {
            for v in volumes {
                if let Some(t) = v.as_map_mut().and_then(|vm| vm.get_mut("target")) {
                    if let Value::Str(target) = &mut t.value {
                        *target = schema::clean(Path::new(target.as_str()));
                    }
                }
            }
        }
        // Services with neither networks nor network_mode are on the default network.
        if !m.contains_key("network_mode") && !m.contains_key("provider") {
            let empty = m
                .get("networks")
                .and_then(Node::as_map)
                .is_none_or(|n| n.is_empty());
            if empty {
                let mut n = IndexMap::new();
                n.insert("default".to_owned(), Node::new(Value::Null, at.clone()));
                m.insert("networks".to_owned(), Node::new(Value::Map(n), at.clone()));
            }
        }
        Ok(())
    }

    fn check_references(
        &self,
        services: &IndexMap<String, Node>,
        top: &IndexMap<String, Node>,
    ) -> Result<(), LoadError> {
        let defined = |section: &str| -> BTreeSet<String> {
            top.get(section)
                .and_then(Node::as_map)
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default()
        };
        let networks = defined("networks");
        let volumes = defined("volumes");
        let secrets = defined("secrets");
        let configs = defined("configs");
        for (name, svc) in services {
            if let Some(deps) = svc.get("depends_on").and_then(Node::as_map) {
                for (dep, d) in deps {
                    if !services.contains_key(dep) {
                        let required = !matches!(
                            d.get("required").map(|r| &r.value),
                            Some(Value::Bool(false))
                        );
                        if required {
                            return Err(LoadError::at(&d.at, format!(
                                "service {name:?} depends on undefined service {dep:?}: invalid compose project"
                            )));
                        }
                    }
                    if d.get("condition").is_none() {
                        return Err(LoadError::at(
                            &d.at,
                            format!(
                                "services.{name}.depends_on.{dep} missing property 'condition'"
                            ),
                        ));
                    }
                }
            }
            if let Some(nets) = svc.get("networks").and_then(Node::as_map) {
                for (net, entry) in nets {
                    if net != "default" && !networks.contains(net) {
                        let at = if entry.at.line > 0 {
                            &entry.at
                        } else {
                            &svc.at
                        };
                        return Err(LoadError::at(at, format!(
                            "service {name:?} refers to undefined network {net}: invalid compose project"
                        )));
                    }
                }
            }
            if let Some(Value::Seq(vols)) = svc.get("volumes").map(|v| &v.value) {
                for v in vols {
                    if v.get("type").and_then(Node::as_str) != Some("volume") {
                        continue;
                    }
                    if let Some(src) = v.get("source").and_then(Node::as_str) {
                        if !volumes.contains(src) {
                            return Err(LoadError::at(&v.at, format!(
                                "service {name:?} refers to undefined volume {src}: invalid compose project"
                            )));
                        }
                    }
                }
            }
            for (section, set) in [("secrets", &secrets), ("configs", &configs)] {
                if let Some(Value::Seq(refs)) = svc.get(section).map(|v| &v.value) {
                    for r in refs {
                        if let Some(src) = r.get("source").and_then(Node::as_str) {
                            if !set.contains(src) {
                                let kind = &section[..section.len() - 1];
                                return Err(LoadError::at(&r.at, format!(
                                    "service {name:?} refers to undefined {kind} {src}: invalid compose project"
                                )));
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

fn tree_has_version(tree: &Node) -> bool {
    tree.get("version").is_some()
}

fn valid_pull_policy(p: &str) -> bool {
    matches!(
        p,
        "always"
            | "never"
            | "build"
            | "if_not_present"
            | "missing"
            | "refresh"
            | "daily"
            | "weekly"
    ) || p.strip_prefix("every_").is_some_and(|rest| {
        !rest.is_empty()
            && rest.split_inclusive(['w', 'd', 'h', 'm', 's']).all(|part| {
                part.len() > 1 && part[..part.len() - 1].bytes().all(|b| b.is_ascii_digit())
            })
    })
}

/// Drops top-level resources no enabled service uses, as v2 does.
fn drop_unused(services: &IndexMap<String, Node>, top: &mut IndexMap<String, Node>) {
    let mut used: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for svc in services.values() {
        if let Some(nets) = svc.get("networks").and_then(Node::as_map) {
            used.entry("networks")
                .or_default()
                .extend(nets.keys().cloned());
        }
        if let Some(Value::Seq(vols)) = svc.get("volumes").map(|v| &v.value) {
            for v in vols {
                if v.get("type").and_then(Node::as_str) == Some("volume") {
                    if let Some(s) = v.get("source").and_then(Node::as_str) {
                        used.entry("volumes").or_default().insert(s.to_owned());
                    }
                }
            }
        }
        for section in ["secrets", "configs"] {
            if let Some(Value::Seq(refs)) = svc.get(section).map(|v| &v.value) {
                for r in refs {
                    if let Some(s) = r.get("source").and_then(Node::as_str) {
                        used.entry(section).or_default().insert(s.to_owned());
                    }
                }
            }
        }
        if let Some(Value::Seq(refs)) = svc
            .get("build")
            .and_then(|b| b.get("secrets"))
            .map(|v| &v.value)
        {
            for r in refs {
                if let Some(s) = r.get("source").and_then(Node::as_str) {
                    used.entry("secrets").or_default().insert(s.to_owned());
                }
            }
        }
    }
    for section in ["networks", "volumes", "secrets", "configs"] {
        let keep = used.remove(section).unwrap_or_default();
        let empty = match top.get_mut(section).and_then(Node::as_map_mut) {
            Some(m) => {
                m.retain(|k, _| keep.contains(k));
                m.is_empty()
            }
            None => false,
        };
        if empty {
            top.shift_remove(section);
        }
    }
}

/// Refuses a cycle in depends_on, naming it.
fn check_cycles(services: &IndexMap<String, Node>) -> Result<(), LoadError> {
    fn visit(
        name: &str,
        services: &IndexMap<String, Node>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Result<(), LoadError> {
        if done.contains(name) {
            return Ok(());
        }
        if let Some(i) = stack.iter().position(|s| s == name) {
            let mut cycle: Vec<String> = stack[i..].to_vec();
            cycle.push(name.to_owned());
            // Where the cycle closes: the last service's dependency on the first.
            let at = stack
                .last()
                .and_then(|last| services.get(last))
                .and_then(|s| s.get("depends_on"))
                .and_then(|d| d.get(name))
                .map(|d| d.at.clone())
                .unwrap_or_else(Pos::made);
            return Err(LoadError::at(
                &at,
                format!("dependency cycle detected: {}", cycle.join(" -> ")),
            ));
        }
        stack.push(name.to_owned());
        if let Some(deps) = services
            .get(name)
            .and_then(|s| s.get("depends_on"))
            .and_then(Node::as_map)
        {
            for dep in deps.keys() {
                if services.contains_key(dep) {
                    visit(dep, services, stack, done)?;
                }
            }
        }
        stack.pop();
        done.insert(name.to_owned());
        Ok(())
    }
    let mut done = BTreeSet::new();
    for name in services.keys() {
        visit(name, services, &mut Vec::new(), &mut done)?;
    }
    Ok(())
}

/// The position of a value in a merged tree, for messages made after loading.
pub fn locate<'a>(tree: &'a Node, path: &[&str]) -> &'a Pos {
    let steps: Vec<PathStep> = path
        .iter()
        .map(|s| PathStep::Key((*s).to_owned()))
        .collect();
    tree.locate(&steps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_names() {
        assert!(valid_project_name("my-app_1"));
        assert!(!valid_project_name("My_Project"));
        assert!(!valid_project_name("_x"));
        assert_eq!(
            normalize_project_name("My.Weird_Dir-NAME"),
            "myweird_dir-name"
        );
    }

    #[test]
    fn pull_policies() {
        assert!(valid_pull_policy("every_12h"));
        assert!(valid_pull_policy("every_1w2d"));
        assert!(!valid_pull_policy("sometimes"));
        assert!(!valid_pull_policy("every_"));
    }
}
