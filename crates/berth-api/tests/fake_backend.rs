//! The API against a fake backend: routing, `/v1.NN` prefixes, query and body parsing, the
//! error edge (kinds to statuses) and stream framing, tested without root or an engine. The
//! fake records what each call was given and answers with canned values; everything a test
//! does not use answers "not implemented" (a 501 if a route reached it unexpectedly).

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use berth_api::archive::{ArchiveBackend, Change, CommitRequest, ExtractOptions, PathStat};
use berth_api::build::{BuildBackend, BuildContext, BuildRequest};
use berth_api::containers::{
    ContainerBackend, CreateRequest, ListQuery, LogCursor, LogQuery, LogStream, Logs, WaitState,
};
use berth_api::distribution::{AuthRequest, DistributionBackend, PullRequest};
use berth_api::events::{Event, EventActor, EventBackend};
use berth_api::exec::{ExecBackend, ExecInspect, ExecLaunch};
use berth_api::images::{ExportWriter, ImageBackend, ImportRequest, ListRequest};
use berth_api::networks::{NetworkBackend, NetworkResource};
use berth_api::system::SystemBackend;
use berth_api::usage::{DiskUsage, UsageBackend};
use berth_api::volumes::VolumeBackend;
use berth_api::BackendResult;
use berth_core::error::HasErrorKind;
use berth_core::filters::Filters;
use berth_core::ErrorKind;
use bollard_stubs::models::*;
use http_body_util::BodyExt;
use tokio::sync::mpsc::UnboundedSender;
use tower::ServiceExt;

/// An error of a given kind, as an engine would classify it.
#[derive(Debug)]
struct FakeError(ErrorKind, String);

impl std::fmt::Display for FakeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.1)
    }
}
impl std::error::Error for FakeError {}
impl HasErrorKind for FakeError {
    fn kind(&self) -> ErrorKind {
        self.0
    }
}

fn nope<T>() -> BackendResult<T> {
    Err(FakeError(ErrorKind::NotImplemented, "not in the fake".into()).into())
}

/// What the fake was asked, for the tests to look at.
#[derive(Debug, Default)]
struct Seen {
    creates: Vec<CreateRequest>,
    lists: Vec<ListQuery>,
    updates: Vec<ContainerUpdateBody>,
    kills: Vec<(String, String)>,
}

#[derive(Debug, Default)]
struct Fake {
    seen: Mutex<Seen>,
    /// Log pieces `container_logs` answers with, and whether the container has a tty.
    logs: Vec<(LogStream, Vec<u8>)>,
    tty: bool,
    events: Vec<Event>,
    /// `wait_state` says the container runs while this is set, and counts its calls.
    running: std::sync::atomic::AtomicBool,
    wait_looks: std::sync::atomic::AtomicUsize,
    /// What `watch_state` hands out (once); or it fails, as with no inotify instance left.
    state_watch: Mutex<Option<std::os::fd::OwnedFd>>,
    watch_fails: bool,
}

impl Fake {
    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap()
    }
}

impl SystemBackend for Fake {
    fn version(&self) -> SystemVersion {
        SystemVersion {
            version: Some("fake".into()),
            ..Default::default()
        }
    }
    fn info(&self) -> SystemInfo {
        SystemInfo::default()
    }
    fn system_check(&self, deep: bool) -> BackendResult<berth_api::system::CheckReport> {
        // Deep: one problem, so the answer's shape shows.
        let problems = if deep {
            vec![berth_api::system::CheckProblem {
                subject: "image store".into(),
                message: "blob sha256:ab: its content has digest sha256:cd".into(),
                repair: "remove the blob".into(),
                repairable: true,
            }]
        } else {
            vec![]
        };
        Ok(berth_api::system::CheckReport { problems })
    }
}

impl ContainerBackend for Fake {
    fn create_container(&self, req: CreateRequest) -> BackendResult<ContainerCreateResponse> {
        if req.name.as_deref() == Some("taken") {
            return Err(FakeError(ErrorKind::Conflict, "name in use".into()).into());
        }
        self.seen().creates.push(req);
        Ok(ContainerCreateResponse {
            id: "c0ffee".into(),
            warnings: vec![],
        })
    }
    fn start_container(&self, _: &str) -> BackendResult<bool> {
        Ok(false)
    }
    fn wait_state(&self, _: &str) -> BackendResult<WaitState> {
        use std::sync::atomic::Ordering::SeqCst;
        self.wait_looks.fetch_add(1, SeqCst);
        Ok(WaitState {
            running: self.running.load(SeqCst),
            exit_code: 3,
            finished_at: "9999".into(),
            ..Default::default()
        })
    }
    fn watch_state(&self, _: &str) -> BackendResult<Option<std::os::fd::OwnedFd>> {
        if self.watch_fails {
            return Err(FakeError(ErrorKind::Internal, "Too many open files".into()).into());
        }
        Ok(self.state_watch.lock().unwrap().take())
    }
    fn begin_attach(&self, _: &str) -> BackendResult<(String, std::path::PathBuf)> {
        nope()
    }
    fn end_attach(&self, _: &str) {}
    fn stop_container(&self, _: &str, _: Option<i64>) -> BackendResult<bool> {
        Ok(true)
    }
    fn kill_container(&self, id: &str, signal: &str) -> BackendResult<()> {
        self.seen().kills.push((id.to_owned(), signal.to_owned()));
        Ok(())
    }
    fn restart_container(&self, _: &str, _: Option<i64>) -> BackendResult<()> {
        nope()
    }
    fn rename_container(&self, _: &str, _: &str) -> BackendResult<()> {
        nope()
    }
    fn top_container(&self, _: &str, _: &str) -> BackendResult<ContainerTopResponse> {
        nope()
    }
    fn resize_container(&self, _: &str, _: u16, _: u16) -> BackendResult<()> {
        nope()
    }
    fn pause_container(&self, _: &str, _: bool) -> BackendResult<()> {
        nope()
    }
    fn remove_container(&self, id: &str, _: bool, _: bool) -> BackendResult<()> {
        Err(FakeError(ErrorKind::NotFound, format!("No such container: {id}")).into())
    }
    fn remove_link(&self, name: &str) -> BackendResult<()> {
        Err(FakeError(ErrorKind::NotFound, format!("No such container: {name}")).into())
    }
    fn container_logs(&self, _: &str, _: &LogQuery, _: Option<LogCursor>) -> BackendResult<Logs> {
        Ok(Logs {
            tty: self.tty,
            records: self.logs.clone(),
            cursor: LogCursor::default(),
            running: false,
        })
    }
    fn list_containers(&self, q: ListQuery) -> BackendResult<Vec<ContainerSummary>> {
        self.seen().lists.push(q);
        Ok(vec![ContainerSummary {
            id: Some("c0ffee".into()),
            ..Default::default()
        }])
    }
    fn inspect_container(&self, id: &str) -> BackendResult<ContainerInspectResponse> {
        Err(FakeError(ErrorKind::NotFound, format!("No such container: {id}")).into())
    }
}

impl ExecBackend for Fake {
    fn create_exec(&self, _: &str, _: ExecConfig) -> BackendResult<String> {
        nope()
    }
    fn launch_exec(&self, _: &str) -> BackendResult<ExecLaunch> {
        nope()
    }
    fn finish_exec(&self, _: &str, _: Option<u32>, _: i64) {}
    fn inspect_exec(&self, id: &str) -> BackendResult<ExecInspect> {
        Ok(ExecInspect {
            id: id.to_owned(),
            running: true,
            ..Default::default()
        })
    }
}

impl EventBackend for Fake {
    fn events_after(&self, seq: u64) -> (Vec<Event>, u64) {
        let n = self.events.len() as u64;
        (
            self.events
                .iter()
                .skip(seq.min(n) as usize)
                .cloned()
                .collect(),
            n,
        )
    }
}

impl ImageBackend for Fake {
    fn upload_dir(&self) -> std::path::PathBuf {
        std::env::temp_dir()
    }
    fn import_image(&self, _: &std::path::Path, _: ImportRequest) -> BackendResult<String> {
        nope()
    }
    fn fetch_import(&self, _: &str, _: &std::path::Path) -> BackendResult<()> {
        nope()
    }
    fn list_images(&self, _: ListRequest) -> BackendResult<Vec<ImageSummary>> {
        nope()
    }
    fn tag_image(&self, _: &str, _: &str, _: &str) -> BackendResult<()> {
        nope()
    }
    fn remove_image(
        &self,
        _: &str,
        _: bool,
        _: bool,
    ) -> BackendResult<Vec<ImageDeleteResponseItem>> {
        nope()
    }
    fn inspect_image(&self, _: &str) -> BackendResult<berth_api::images::ImageInspectResponse> {
        nope()
    }
    fn image_history(&self, _: &str) -> BackendResult<Vec<ImageHistoryResponseItem>> {
        nope()
    }
    fn prune_images(&self, _: Filters) -> BackendResult<ImagePruneResponse> {
        nope()
    }
    fn export_images(&self, _: Vec<String>) -> BackendResult<ExportWriter> {
        nope()
    }
    fn load_images(&self, _: &std::path::Path, _: bool) -> BackendResult<Vec<String>> {
        nope()
    }
}

impl DistributionBackend for Fake {
    fn pull_image(&self, _: PullRequest, out: UnboundedSender<String>) -> BackendResult<()> {
        let _ = out.send(r#"{"status":"Pulling from fake"}"#.into());
        Err(FakeError(ErrorKind::NotFound, "manifest unknown".into()).into())
    }
    fn push_image(
        &self,
        _: &str,
        _: Option<&str>,
        _: Option<&str>,
        _: UnboundedSender<String>,
    ) -> BackendResult<()> {
        nope()
    }
    fn check_auth(&self, req: AuthRequest) -> BackendResult<AuthResponse> {
        Ok(AuthResponse {
            status: format!("Login Succeeded for {}", req.username),
            identity_token: None,
        })
    }
    fn distribution_inspect(&self, _: &str, _: Option<&str>) -> BackendResult<DistributionInspect> {
        nope()
    }
    fn search_images(
        &self,
        _: &str,
        _: u32,
    ) -> BackendResult<Vec<bollard_stubs::models::ImageSearchResponseItem>> {
        nope()
    }
}

impl VolumeBackend for Fake {
    fn create_volume(&self, _: VolumeCreateRequest) -> BackendResult<Volume> {
        nope()
    }
    fn list_volumes(&self, _: Filters) -> BackendResult<VolumeListResponse> {
        nope()
    }
    fn inspect_volume(&self, _: &str) -> BackendResult<Volume> {
        nope()
    }
    fn remove_volume(&self, _: &str, _: bool) -> BackendResult<()> {
        nope()
    }
    fn prune_volumes(&self, _: Filters) -> BackendResult<VolumePruneResponse> {
        nope()
    }
    fn export_volume(&self, _: &str) -> BackendResult<ExportWriter> {
        nope()
    }
    fn import_volume(&self, _: &str, _: &std::path::Path) -> BackendResult<()> {
        nope()
    }
}

impl NetworkBackend for Fake {
    fn create_network(&self, _: NetworkCreateRequest) -> BackendResult<NetworkCreateResponse> {
        nope()
    }
    fn list_networks(&self, _: Filters) -> BackendResult<Vec<NetworkResource>> {
        nope()
    }
    fn inspect_network(&self, _: &str) -> BackendResult<NetworkResource> {
        nope()
    }
    fn remove_network(&self, _: &str) -> BackendResult<()> {
        Err(FakeError(
            ErrorKind::Forbidden,
            "bridge is a pre-defined network".into(),
        )
        .into())
    }
    fn prune_networks(&self, _: Filters) -> BackendResult<NetworkPruneResponse> {
        nope()
    }
    fn connect_network(&self, _: &str, _: NetworkConnectRequest) -> BackendResult<()> {
        nope()
    }
    fn disconnect_network(&self, _: &str, _: NetworkDisconnectRequest) -> BackendResult<()> {
        nope()
    }
}

impl UsageBackend for Fake {
    fn container_stats(&self, _: &str) -> BackendResult<(ContainerStatsResponse, bool)> {
        nope()
    }
    fn update_container(&self, _: &str, body: ContainerUpdateBody) -> BackendResult<Vec<String>> {
        self.seen().updates.push(body);
        Ok(vec![])
    }
    fn prune_containers(&self, _: Filters) -> BackendResult<ContainerPruneResponse> {
        nope()
    }
    fn disk_usage(&self, _: Vec<String>) -> BackendResult<DiskUsage> {
        Ok(DiskUsage::default())
    }
}

impl ArchiveBackend for Fake {
    fn stat_container_path(&self, _: &str, _: &str) -> BackendResult<PathStat> {
        nope()
    }
    fn archive_container_path(
        &self,
        _: &str,
        _: &str,
        _: &mut dyn FnMut(&PathStat),
        _: &mut dyn Write,
    ) -> BackendResult<()> {
        nope()
    }
    fn extract_to_container(
        &self,
        _: &str,
        _: &str,
        _: ExtractOptions,
        _: &mut dyn Read,
    ) -> BackendResult<()> {
        nope()
    }
    fn export_container(
        &self,
        _: &str,
        _: &mut dyn FnMut(),
        _: &mut dyn Write,
    ) -> BackendResult<()> {
        nope()
    }
    fn container_changes(&self, _: &str) -> BackendResult<Vec<Change>> {
        nope()
    }
    fn commit_container(&self, _: CommitRequest) -> BackendResult<String> {
        nope()
    }
}

impl BuildBackend for Fake {
    fn build_image(
        &self,
        _: BuildRequest,
        _: BuildContext,
        _: UnboundedSender<String>,
    ) -> BackendResult<()> {
        nope()
    }
    fn prune_build_cache(&self, _: bool, _: Option<u64>) -> BackendResult<BuildPruneResponse> {
        nope()
    }
}

/// The status, headers and whole body of one request to the API over `fake`.
async fn call(
    fake: &Arc<Fake>,
    method: &str,
    uri: &str,
    body: &str,
) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let app = berth_api::router(fake.clone());
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap();
    let resp = app.oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    (status, headers, bytes)
}

fn json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(bytes)))
}

#[tokio::test]
async fn versioned_and_plain_paths_reach_the_same_handler_with_the_query_parsed() {
    let fake = Arc::new(Fake::default());
    let filters = r#"{"status":["exited"],"label":["a=b"]}"#;
    let encoded: String = filters
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    for prefix in ["", "/v1.24", "/v1.41", "/v1.45"] {
        let (status, headers, body) = call(
            &fake,
            "GET",
            &format!("{prefix}/containers/json?all=1&limit=3&size=true&filters={encoded}"),
            "",
        )
        .await;
        assert_eq!(status, 200, "{prefix}");
        assert_eq!(json(&body)[0]["Id"], "c0ffee");
        assert_eq!(headers["Api-Version"], "1.45");
        assert_eq!(headers["Ostype"], "linux");
    }
    let seen = fake.seen();
    assert_eq!(seen.lists.len(), 4);
    for q in &seen.lists {
        assert!(q.all && q.size);
        assert_eq!(q.limit, Some(3));
        assert_eq!(q.filters.get("status"), ["exited"]);
        assert_eq!(q.filters.get("label"), ["a=b"]);
    }
}

#[tokio::test]
async fn versions_out_of_range_and_unknown_paths_get_dockers_errors() {
    let fake = Arc::new(Fake::default());
    let (status, _, body) = call(&fake, "GET", "/v1.99/containers/json", "").await;
    assert_eq!(status, 400);
    assert_eq!(
        json(&body)["message"],
        "client version 1.99 is too new. Maximum supported API version is 1.45"
    );
    let (status, _, body) = call(&fake, "GET", "/v1.12/version", "").await;
    assert_eq!(status, 400);
    assert!(json(&body)["message"]
        .as_str()
        .unwrap()
        .starts_with("client version 1.12 is too old"));
    let (status, _, body) = call(&fake, "GET", "/nothing/here", "").await;
    assert_eq!(status, 404);
    assert_eq!(json(&body)["message"], "page not found: /nothing/here");
}

#[tokio::test]
async fn a_create_body_is_typed_at_the_edge_and_bad_ones_never_reach_the_backend() {
    let fake = Arc::new(Fake::default());
    let good = r#"{"Image":"bb","Cmd":"echo hi","Entrypoint":["sh","-c"],
        "HostConfig":{"Memory":67108864,"RestartPolicy":{"Name":"on-unhealthy"},
                      "PortBindings":{"80/tcp":[{"HostPort":"8080"}]}},
        "MacAddress":"02:42:ac:11:00:02"}"#;
    let (status, _, body) = call(&fake, "POST", "/v1.45/containers/create?name=/web", good).await;
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    assert_eq!(json(&body)["Id"], "c0ffee");
    {
        let seen = fake.seen();
        let req = &seen.creates[0];
        assert_eq!(req.name.as_deref(), Some("web"));
        assert_eq!(req.body.cmd.as_deref(), Some(&["echo hi".to_owned()][..]));
        assert_eq!(req.restart.name, "on-unhealthy");
        let hc = req.body.host_config.as_ref().unwrap();
        assert_eq!(hc.memory, Some(67108864));
        assert!(hc.restart_policy.is_none());
        assert!(hc.port_bindings.as_ref().unwrap().contains_key("80/tcp"));
        assert_eq!(req.mac_address.as_deref(), Some("02:42:ac:11:00:02"));
    }
    for (bad, words) in [
        (
            r#"{"Image":"bb","HostConfig":{"Memory":"lots"}}"#,
            "json: cannot unmarshal string into Go struct field ContainerCreateRequest.HostConfig.Memory of type int64",
        ),
        (r#"{"Image":"bb","Tty":"yes"}"#, "json: cannot unmarshal string into Go struct field ContainerCreateRequest.Tty of type bool"),
        (r#"{"Image":"bb","HostConfig":{"ShmSize":-1}}"#, "SHM size can not be less than 0"),
        (r#"{"Image":"bb","HostConfig":{"Isolation":"hyperv"}}"#, "Invalid isolation: \"hyperv\" - linux only supports 'default'"),
        ("[1,2]", "json: cannot unmarshal into Go value of type container.CreateRequest"),
        ("{", "invalid JSON"),
    ] {
        let (status, _, body) = call(&fake, "POST", "/containers/create", bad).await;
        assert_eq!(status, 400, "{bad}");
        let msg = json(&body)["message"].as_str().unwrap().to_owned();
        assert!(msg.starts_with(words), "{bad}: {msg}");
    }
    assert_eq!(fake.seen().creates.len(), 1);
    // The backend's classified error becomes the status.
    let (status, _, body) = call(&fake, "POST", "/containers/create?name=taken", good).await;
    assert_eq!(status, 409);
    assert_eq!(json(&body)["message"], "name in use");
}

#[tokio::test]
async fn error_kinds_become_dockers_statuses() {
    let fake = Arc::new(Fake::default());
    let (status, _, body) = call(&fake, "GET", "/containers/nope/json", "").await;
    assert_eq!(status, 404);
    assert_eq!(json(&body)["message"], "No such container: nope");
    let (status, _, _) = call(&fake, "DELETE", "/networks/bridge", "").await;
    assert_eq!(status, 403);
    let (status, _, _) = call(&fake, "POST", "/containers/x/restart", "").await;
    assert_eq!(status, 501);
    let (status, _, _) = call(&fake, "POST", "/containers/x/start", "").await;
    assert_eq!(status, 304);
}

#[tokio::test]
async fn logs_are_multiplexed_without_a_tty_and_raw_with_one() {
    let pieces = vec![
        (LogStream::Stdout, b"out\n".to_vec()),
        (LogStream::Stderr, b"err\n".to_vec()),
    ];
    let fake = Arc::new(Fake {
        logs: pieces.clone(),
        ..Default::default()
    });
    let (status, headers, body) =
        call(&fake, "GET", "/containers/x/logs?stdout=1&stderr=1", "").await;
    assert_eq!(status, 200);
    assert_eq!(
        headers["content-type"],
        "application/vnd.docker.multiplexed-stream"
    );
    let mut expected = vec![1u8, 0, 0, 0, 0, 0, 0, 4];
    expected.extend_from_slice(b"out\n");
    expected.extend_from_slice(&[2, 0, 0, 0, 0, 0, 0, 4]);
    expected.extend_from_slice(b"err\n");
    assert_eq!(body, expected);
    let tty = Arc::new(Fake {
        logs: pieces,
        tty: true,
        ..Default::default()
    });
    let (_, _, body) = call(&tty, "GET", "/containers/x/logs?stdout=1&stderr=1", "").await;
    assert_eq!(body, b"out\nerr\n");
}

#[tokio::test]
async fn wait_answers_with_the_exit_code_and_kill_passes_the_signal() {
    let fake = Arc::new(Fake::default());
    let (status, _, body) = call(&fake, "POST", "/containers/x/wait", "").await;
    assert_eq!(status, 200);
    assert_eq!(json(&body)["StatusCode"], 3);
    let (status, _, body) = call(&fake, "POST", "/containers/x/wait?condition=sometime", "").await;
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    let (status, _, _) = call(&fake, "POST", "/v1.41/containers/x/kill?signal=HUP", "").await;
    assert_eq!(status, 204);
    assert_eq!(fake.seen().kills, [("x".to_owned(), "HUP".to_owned())]);
}

#[tokio::test]
async fn a_wait_looks_again_when_the_backend_says_the_state_changed() {
    use std::sync::atomic::Ordering::SeqCst;
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_NONBLOCK).unwrap();
    let fake = Arc::new(Fake {
        running: true.into(),
        state_watch: Mutex::new(Some(r)),
        ..Default::default()
    });
    let waiting = tokio::spawn({
        let fake = fake.clone();
        async move { call(&fake, "POST", "/containers/x/wait", "").await }
    });
    // Running: the wait looks once to know the container, once more, and then waits.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(fake.wait_looks.load(SeqCst), 2);
    fake.running.store(false, SeqCst);
    let poked = std::time::Instant::now();
    nix::unistd::write(&w, b"x").unwrap();
    let (status, _, body) = waiting.await.unwrap();
    assert_eq!(
        (status.as_u16(), json(&body)["StatusCode"].as_i64()),
        (200, Some(3))
    );
    // Woken by the descriptor, not by its own look a quarter of a second later.
    assert_eq!(fake.wait_looks.load(SeqCst), 3);
    assert!(poked.elapsed() < std::time::Duration::from_millis(50));
}

#[tokio::test]
async fn a_wait_without_a_watch_still_answers() {
    let fake = Arc::new(Fake {
        watch_fails: true,
        ..Default::default()
    });
    let (status, _, body) = call(&fake, "POST", "/containers/x/wait", "").await;
    assert_eq!(
        (status.as_u16(), json(&body)["StatusCode"].as_i64()),
        (200, Some(3))
    );
}

#[tokio::test]
async fn update_bodies_are_typed_and_keep_dockers_words() {
    let fake = Arc::new(Fake::default());
    let (status, _, body) = call(
        &fake,
        "POST",
        "/containers/x/update",
        r#"{"Memory":104857600,"NanoCPUs":500000000,"RestartPolicy":{"Name":"always"}}"#,
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(json(&body), serde_json::json!({"Warnings": []}));
    {
        let seen = fake.seen();
        assert_eq!(seen.updates[0].memory, Some(104857600));
        assert_eq!(seen.updates[0].nano_cpus, Some(500000000));
    }
    let (status, _, body) = call(
        &fake,
        "POST",
        "/containers/x/update",
        r#"{"RestartPolicy":{"Name":"sometimes"}}"#,
    )
    .await;
    assert_eq!(status, 400);
    assert!(json(&body)["message"]
        .as_str()
        .unwrap()
        .starts_with("invalid restart policy: unknown policy 'sometimes'"));
    let (status, _, _) = call(&fake, "POST", "/containers/x/update", r#"{"Memory":"x"}"#).await;
    assert_eq!(status, 400);
    assert_eq!(fake.seen().updates.len(), 1);
}

#[tokio::test]
async fn events_stream_as_json_lines_filtered_and_bounded_by_until() {
    let event = |kind: &str, action: &str, name: &str| Event {
        kind: kind.into(),
        action: action.into(),
        actor: EventActor {
            id: format!("{name}-id"),
            attributes: [("name".to_owned(), name.to_owned())].into(),
        },
        scope: "local".into(),
        time: 1,
        time_nano: 1_000_000_000,
        status: (kind == "container").then(|| action.to_owned()),
        ..Default::default()
    };
    let fake = Arc::new(Fake {
        events: vec![
            event("container", "start", "web"),
            event("network", "create", "net"),
            event("container", "die", "db"),
        ],
        ..Default::default()
    });
    let (status, _, body) = call(
        &fake,
        "GET",
        "/events?since=0&until=2&filters=%7B%22type%22%3A%5B%22container%22%5D%7D",
        "",
    )
    .await;
    assert_eq!(status, 200);
    let lines: Vec<serde_json::Value> = String::from_utf8(body)
        .unwrap()
        .lines()
        .map(|l| json(l.as_bytes()))
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0]["Action"], "start");
    assert_eq!(lines[0]["status"], "start");
    assert_eq!(lines[1]["Actor"]["Attributes"]["name"], "db");
    let (status, _, body) = call(
        &fake,
        "GET",
        "/events?filters=%7B%22colour%22%3A%5B%22x%22%5D%7D",
        "",
    )
    .await;
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
}

#[tokio::test]
async fn progress_streams_end_with_the_backends_error_as_a_message() {
    let fake = Arc::new(Fake::default());
    let (status, _, body) = call(&fake, "POST", "/images/create?fromImage=bb&tag=1", "").await;
    assert_eq!(status, 200);
    let text = String::from_utf8(body).unwrap();
    let lines: Vec<serde_json::Value> = text.lines().map(|l| json(l.as_bytes())).collect();
    assert_eq!(lines[0]["status"], "Pulling from fake");
    let last = lines.last().unwrap();
    assert_eq!(last["errorDetail"]["message"], "manifest unknown", "{text}");
}

#[tokio::test]
async fn auth_and_exec_inspect_speak_dockers_models() {
    let fake = Arc::new(Fake::default());
    let (status, _, body) = call(
        &fake,
        "POST",
        "/auth",
        r#"{"username":"me","password":"pw","serveraddress":"127.0.0.1:5000"}"#,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(json(&body)["Status"], "Login Succeeded for me");
    let (status, _, body) = call(&fake, "GET", "/exec/e1/json", "").await;
    assert_eq!(status, 200);
    let v = json(&body);
    assert_eq!(v["ID"], "e1");
    // Docker sends null while the command runs; clients index the field.
    assert!(v["ExitCode"].is_null() && v.as_object().unwrap().contains_key("ExitCode"));
    let (status, _, body) = call(&fake, "GET", "/system/df?type=volume", "").await;
    assert_eq!(status, 200);
    let v = json(&body);
    assert_eq!(v["LayersSize"], 0);
    assert!(v["Images"].is_null() && v.as_object().unwrap().contains_key("Volumes"));
    let (status, _, _) = call(&fake, "GET", "/system/df?type=galaxy", "").await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn swarm_and_plugin_endpoints_answer_as_a_docker_outside_a_swarm() {
    let fake = Arc::new(Fake::default());
    for (method, path) in [
        ("GET", "/swarm"),
        ("GET", "/v1.41/nodes"),
        ("GET", "/services"),
        ("POST", "/services/create"),
        ("GET", "/tasks"),
        ("GET", "/secrets"),
        ("GET", "/configs/x"),
    ] {
        let (status, _, body) = call(&fake, method, path, "").await;
        assert_eq!(status, 503, "{method} {path}");
        assert!(json(&body)["message"]
            .as_str()
            .unwrap()
            .starts_with("This node is not a swarm manager. Use \"docker swarm init\""));
    }
    let (status, _, body) = call(&fake, "POST", "/swarm/leave?force=1", "").await;
    assert_eq!(status, 503);
    assert_eq!(json(&body)["message"], "This node is not part of a swarm");
    let (status, _, _) = call(&fake, "POST", "/swarm/init", "{}").await;
    assert_eq!(status, 503);
    let (status, _, body) = call(&fake, "GET", "/plugins", "").await;
    assert_eq!(status, 200);
    assert_eq!(json(&body), serde_json::json!([]));
    let (status, _, body) = call(&fake, "GET", "/v1.41/plugins/vieux/sshfs/json", "").await;
    assert_eq!(status, 404);
    assert_eq!(
        json(&body)["message"],
        "plugin \"vieux/sshfs:latest\" not found"
    );
}

#[tokio::test]
async fn buildkit_sessions_and_builds_are_refused_as_a_daemon_without_buildkit() {
    let fake = Arc::new(Fake::default());
    let (status, _, body) = call(&fake, "POST", "/session", "").await;
    assert_eq!(status, 400);
    assert_eq!(json(&body)["message"], "no upgrade proto in request");
    let (status, _, body) = call(&fake, "POST", "/v1.41/build?version=2", "").await;
    assert_eq!(status, 400);
    assert_eq!(json(&body)["message"], "buildkit not supported by daemon");
}

#[tokio::test]
async fn system_check_passes_deep_and_answers_the_report() {
    let fake = Arc::new(Fake::default());
    let (status, _, body) = call(&fake, "GET", "/v1.45/system/check", "").await;
    assert_eq!(status, 200);
    assert_eq!(json(&body), serde_json::json!({"Problems": []}));
    let (status, _, body) = call(&fake, "GET", "/system/check?deep=1", "").await;
    assert_eq!(status, 200);
    assert_eq!(
        json(&body),
        serde_json::json!({"Problems": [{
            "Subject": "image store",
            "Message": "blob sha256:ab: its content has digest sha256:cd",
            "Repair": "remove the blob",
            "Repairable": true,
        }]})
    );
}
