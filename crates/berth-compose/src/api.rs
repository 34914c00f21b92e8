//! The Engine API calls compose makes, typed enough for convergence: containers, networks,
//! volumes, images, exec and archives. Only the daemon's answers are read here; deciding
//! what to call is convergence's job.

use std::io::Read;

use anyhow::{anyhow, Context as _, Result};
use berth_client::client::{with_query, Payload, Streaming};
use berth_client::{Client, ClientError};
use serde_json::{json, Value};

use crate::naming;

/// Whether an error is the daemon's "no such object".
pub fn is_not_found(e: &ClientError) -> bool {
    e.status() == Some(404)
}

fn filters(labels: &[String]) -> String {
    json!({ "label": labels }).to_string()
}

/// A container as `GET /containers/json` lists it.
#[derive(Debug, Clone)]
pub struct Summary {
    pub id: String,
    pub name: String,
    pub image: String,
    pub command: String,
    pub created: i64,
    pub state: String,
    pub status: String,
    pub labels: serde_json::Map<String, Value>,
    pub raw: Value,
}

impl Summary {
    fn from_json(v: &Value) -> Summary {
        let s = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
        Summary {
            id: s("Id"),
            name: v["Names"][0]
                .as_str()
                .unwrap_or_default()
                .trim_start_matches('/')
                .to_owned(),
            image: s("Image"),
            command: s("Command"),
            created: v["Created"].as_i64().unwrap_or_default(),
            state: s("State"),
            status: s("Status"),
            labels: v["Labels"].as_object().cloned().unwrap_or_default(),
            raw: v.clone(),
        }
    }

    pub fn label(&self, key: &str) -> &str {
        self.labels.get(key).and_then(Value::as_str).unwrap_or("")
    }

    pub fn service(&self) -> &str {
        self.label(naming::SERVICE)
    }

    pub fn number(&self) -> u32 {
        self.label(naming::CONTAINER_NUMBER).parse().unwrap_or(0)
    }

    pub fn oneoff(&self) -> bool {
        self.label(naming::ONEOFF) == "True"
    }
}

/// Which containers of a project a listing includes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OneOff {
    Exclude,
    Only,
    Include,
}

/// The project's containers (`all`: stopped ones too), sorted by name.
pub fn project_containers(
    client: &Client,
    project: &str,
    oneoff: OneOff,
    all: bool,
) -> Result<Vec<Summary>> {
    let mut labels = vec![format!("{}={project}", naming::PROJECT)];
    match oneoff {
        OneOff::Exclude => labels.push(format!("{}=False", naming::ONEOFF)),
        OneOff::Only => labels.push(format!("{}=True", naming::ONEOFF)),
        OneOff::Include => {}
    }
    let path = with_query(
        "/containers/json",
        &[
            ("all", if all { "1" } else { "0" }.into()),
            ("filters", filters(&labels)),
        ],
    );
    let list = client.get(&path)?.json()?;
    let mut out: Vec<Summary> = list
        .as_array()
        .map(|a| a.iter().map(Summary::from_json).collect())
        .unwrap_or_default();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Every container carrying a compose project label (for `ls`).
pub fn all_project_containers(client: &Client) -> Result<Vec<Summary>> {
    let path = with_query(
        "/containers/json",
        &[
            ("all", "1".into()),
            ("filters", filters(&[naming::PROJECT.to_owned()])),
        ],
    );
    let list = client.get(&path)?.json()?;
    Ok(list
        .as_array()
        .map(|a| a.iter().map(Summary::from_json).collect())
        .unwrap_or_default())
}

pub fn inspect_container(client: &Client, id: &str) -> Result<Value> {
    Ok(client.get(&format!("/containers/{id}/json"))?.json()?)
}

/// Creates a container; `platform` (`linux/arm64`) may be empty.
pub fn create_container(
    client: &Client,
    name: &str,
    platform: &str,
    body: &Value,
) -> Result<String> {
    let mut query = vec![("name", name.to_owned())];
    if !platform.is_empty() {
        query.push(("platform", platform.to_owned()));
    }
    let path = with_query("/containers/create", &query);
    let resp = client.post(&path, Some(body))?.json()?;
    resp["Id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("the daemon answered a create without an Id"))
}

pub fn start(client: &Client, id: &str) -> Result<()> {
    client.post(&format!("/containers/{id}/start"), None)?;
    Ok(())
}

pub fn stop(client: &Client, id: &str, timeout: Option<i64>) -> Result<()> {
    let path = match timeout {
        Some(t) => format!("/containers/{id}/stop?t={t}"),
        None => format!("/containers/{id}/stop"),
    };
    match client.post(&path, None) {
        Ok(_) => Ok(()),
        // Already stopped.
        Err(e) if e.status() == Some(304) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

pub fn restart(client: &Client, id: &str, timeout: Option<i64>) -> Result<()> {
    let path = match timeout {
        Some(t) => format!("/containers/{id}/restart?t={t}"),
        None => format!("/containers/{id}/restart"),
    };
    client.post(&path, None)?;
    Ok(())
}

pub fn kill(client: &Client, id: &str, signal: &str) -> Result<()> {
    let path = with_query(
        &format!("/containers/{id}/kill"),
        &[("signal", signal.to_owned())],
    );
    client.post(&path, None)?;
    Ok(())
}

pub fn remove(client: &Client, id: &str, force: bool, volumes: bool) -> Result<()> {
    let path = with_query(
        &format!("/containers/{id}"),
        &[
            ("force", if force { "1" } else { "0" }.into()),
            ("v", if volumes { "1" } else { "0" }.into()),
        ],
    );
    match client.delete(&path) {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

pub fn rename(client: &Client, id: &str, name: &str) -> Result<()> {
    let path = with_query(
        &format!("/containers/{id}/rename"),
        &[("name", name.to_owned())],
    );
    client.post(&path, None)?;
    Ok(())
}

pub fn pause(client: &Client, id: &str) -> Result<()> {
    client.post(&format!("/containers/{id}/pause"), None)?;
    Ok(())
}

pub fn unpause(client: &Client, id: &str) -> Result<()> {
    client.post(&format!("/containers/{id}/unpause"), None)?;
    Ok(())
}

/// Blocks until the container stops; its exit code.
pub fn wait(client: &Client, id: &str) -> Result<i64> {
    let resp = client
        .post(
            &format!("/containers/{id}/wait?condition=not-running"),
            None,
        )?
        .json()?;
    Ok(resp["StatusCode"].as_i64().unwrap_or_default())
}

/// Copies a tar into a container (`PUT /containers/{id}/archive`).
pub fn put_archive(client: &Client, id: &str, path: &str, tar: &mut dyn Read) -> Result<()> {
    let url = with_query(
        &format!("/containers/{id}/archive"),
        &[("path", path.to_owned())],
    );
    client
        .upload("PUT", &url, "application/x-tar", tar)?
        .into_response()?;
    Ok(())
}

/// A streaming log response.
pub fn logs(client: &Client, id: &str, query: &[(&str, String)]) -> Result<Streaming> {
    let path = with_query(&format!("/containers/{id}/logs"), query);
    Ok(client.send("GET", &path, Payload::None)?)
}

/// A network by name or ID, `None` when there is none.
pub fn inspect_network(client: &Client, name: &str) -> Result<Option<Value>> {
    match client.get(&format!("/networks/{name}")) {
        Ok(r) => Ok(Some(r.json()?)),
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

pub fn create_network(client: &Client, body: &Value) -> Result<String> {
    let resp = client.post("/networks/create", Some(body))?.json()?;
    Ok(resp["Id"].as_str().unwrap_or_default().to_owned())
}

pub fn remove_network(client: &Client, id: &str) -> Result<()> {
    match client.delete(&format!("/networks/{id}")) {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

pub fn connect_network(client: &Client, network: &str, body: &Value) -> Result<()> {
    client.post(&format!("/networks/{network}/connect"), Some(body))?;
    Ok(())
}

/// Networks or volumes carrying the project's label.
pub fn project_networks(client: &Client, project: &str) -> Result<Vec<Value>> {
    let path = with_query(
        "/networks",
        &[(
            "filters",
            filters(&[format!("{}={project}", naming::PROJECT)]),
        )],
    );
    Ok(client
        .get(&path)?
        .json()?
        .as_array()
        .cloned()
        .unwrap_or_default())
}

/// Names of the volumes carrying the project's label.
pub fn project_volumes(client: &Client, project: &str) -> Result<Vec<String>> {
    let path = with_query(
        "/volumes",
        &[(
            "filters",
            filters(&[format!("{}={project}", naming::PROJECT)]),
        )],
    );
    let v = client.get(&path)?.json()?;
    Ok(v["Volumes"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x["Name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default())
}

pub fn inspect_volume(client: &Client, name: &str) -> Result<Option<Value>> {
    match client.get(&format!("/volumes/{name}")) {
        Ok(r) => Ok(Some(r.json()?)),
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

pub fn create_volume(client: &Client, body: &Value) -> Result<()> {
    client.post("/volumes/create", Some(body))?;
    Ok(())
}

pub fn remove_volume(client: &Client, name: &str) -> Result<()> {
    match client.delete(&format!("/volumes/{name}?force=1")) {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// An image's inspect, `None` when it is not present.
pub fn inspect_image(client: &Client, reference: &str) -> Result<Option<Value>> {
    match client.get(&format!("/images/{reference}/json")) {
        Ok(r) => Ok(Some(r.json()?)),
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

pub fn remove_image(client: &Client, reference: &str) -> Result<()> {
    match client.delete(&format!("/images/{reference}")) {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Reads a JSON-lines progress stream (pull, push, build) to its end; the first error
/// message in it, if any. `each` sees every message.
pub fn drain_progress(
    resp: &mut Streaming,
    each: &mut dyn FnMut(&Value),
) -> Result<Option<String>> {
    let mut error = None;
    loop {
        let line = resp
            .body()
            .read_line_bytes()
            .context("reading the daemon's progress")?;
        if line.is_empty() {
            break;
        }
        let Ok(msg) = serde_json::from_slice::<Value>(&line) else {
            continue;
        };
        if let Some(e) = msg["error"]
            .as_str()
            .or(msg["errorDetail"]["message"].as_str())
        {
            error.get_or_insert_with(|| e.to_owned());
        }
        each(&msg);
    }
    Ok(error)
}

/// Creates an exec and returns its ID.
pub fn exec_create(client: &Client, id: &str, body: &Value) -> Result<String> {
    let resp = client
        .post(&format!("/containers/{id}/exec"), Some(body))?
        .json()?;
    Ok(resp["Id"].as_str().unwrap_or_default().to_owned())
}

pub fn exec_exit_code(client: &Client, exec_id: &str) -> Result<i64> {
    let resp = client.get(&format!("/exec/{exec_id}/json"))?.json()?;
    Ok(resp["ExitCode"].as_i64().unwrap_or_default())
}
