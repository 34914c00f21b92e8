//! The API's `ContainerBackend` over the engine's container verbs: each method calls the verb
//! and hands its error, kind and all, to the API edge.

use berth_api::containers::{
    ContainerBackend, CreateRequest, ListQuery, LogCursor, LogQuery, Logs, WaitState,
};
use berth_api::BackendResult;
use bollard_stubs::models::{
    ContainerCreateResponse, ContainerInspectResponse, ContainerSummary, ContainerTopResponse,
};

use crate::Engine;

impl ContainerBackend for Engine {
    fn create_container(&self, req: CreateRequest) -> BackendResult<ContainerCreateResponse> {
        Ok(self.create(req)?)
    }
    fn start_container(&self, id: &str) -> BackendResult<bool> {
        Ok(self.start(id)?)
    }
    fn wait_state(&self, id: &str) -> BackendResult<WaitState> {
        Ok(Engine::wait_state(self, id)?)
    }
    fn watch_state(&self, id: &str) -> BackendResult<Option<std::os::fd::OwnedFd>> {
        Ok(Some(Engine::watch_state(self, id)?))
    }
    fn begin_attach(&self, id: &str) -> BackendResult<(String, std::path::PathBuf)> {
        Ok(Engine::begin_attach(self, id)?)
    }
    fn end_attach(&self, id: &str) {
        Engine::end_attach(self, id)
    }
    fn stop_container(&self, id: &str, timeout: Option<i64>) -> BackendResult<bool> {
        Ok(self.stop(id, timeout)?)
    }
    fn kill_container(&self, id: &str, signal: &str) -> BackendResult<()> {
        Ok(self.kill(id, signal)?)
    }
    fn restart_container(&self, id: &str, timeout: Option<i64>) -> BackendResult<()> {
        Ok(self.restart(id, timeout)?)
    }
    fn rename_container(&self, id: &str, new_name: &str) -> BackendResult<()> {
        Ok(self.rename(id, new_name)?)
    }
    fn top_container(&self, id: &str, ps_args: &str) -> BackendResult<ContainerTopResponse> {
        Ok(self.top(id, ps_args)?)
    }
    fn resize_container(&self, id: &str, rows: u16, cols: u16) -> BackendResult<()> {
        Ok(self.resize(id, rows, cols)?)
    }
    fn pause_container(&self, id: &str, pause: bool) -> BackendResult<()> {
        Ok(self.pause(id, pause)?)
    }
    fn remove_container(&self, id: &str, force: bool, volumes: bool) -> BackendResult<()> {
        Ok(self.remove(id, force, volumes)?)
    }
    fn remove_link(&self, name: &str) -> BackendResult<()> {
        Ok(Engine::remove_link(self, name)?)
    }
    fn container_logs(
        &self,
        id: &str,
        q: &LogQuery,
        cursor: Option<LogCursor>,
    ) -> BackendResult<Logs> {
        Ok(self.logs(id, q, cursor)?)
    }
    fn list_containers(&self, q: ListQuery) -> BackendResult<Vec<ContainerSummary>> {
        Ok(self.list(q)?)
    }
    fn inspect_container(&self, id: &str) -> BackendResult<ContainerInspectResponse> {
        Ok(self.inspect(id)?)
    }
}
