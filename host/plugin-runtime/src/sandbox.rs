//! The per-instance state of a sandboxed plugin: a WASI context with nothing in it (no preopened
//! directories, no sockets, no environment, no arguments, a fixed clock, a seeded random source,
//! stdout/stderr captured into the log), the memory cap, the per-call clock behind the epoch
//! deadline, and the host side of the `log` and `models` imports.

use crate::bindings::{v0_1_0, v0_2_0};
use crate::capability::{
    BudgetExceeded, ChoiceRequest, GenerateRequest, ModelAccess, ModelBudget, RewardRequest,
};
use ponder_contract::ModelAccessError;
use ponder_manifest::Limits;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, Store, UpdateDeadline};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

/// Severity of a log record, as in the WIT `log.level` (of every contract version).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// Very detailed tracing.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal progress.
    Info,
    /// Something unexpected, worked around.
    Warn,
    /// Something failed.
    Error,
}

impl LogLevel {
    /// Lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}

/// Where plugin log records, stdout and stderr go.
pub trait LogSink: Send + Sync {
    /// Records one message of `plugin`.
    fn record(&self, plugin: &str, level: LogLevel, message: &str);
}

/// Writes records at or above a level to the process's stderr as `[plugin NAME] LEVEL: text`.
#[derive(Debug, Clone, Copy)]
pub struct StderrLog {
    /// Records below this level are dropped.
    pub min_level: LogLevel,
}

impl LogSink for StderrLog {
    fn record(&self, plugin: &str, level: LogLevel, message: &str) {
        if level >= self.min_level {
            eprintln!("[plugin {plugin}] {}: {message}", level.name());
        }
    }
}

/// Bytes of log text (records, stdout and stderr together) one call may produce before further
/// records are dropped.
const LOG_BUDGET_PER_CALL: usize = 64 * 1024;
/// Capacity of the captured stdout and of stderr of one instance; writes past it fail.
const PIPE_CAPACITY: usize = 1024 * 1024;
/// Period of the epoch ticker.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(2);
/// The fixed wall-clock time plugins see: 2024-01-01T00:00:00Z.
const FIXED_WALL_CLOCK: Duration = Duration::from_secs(1_704_067_200);

/// Memory cap of one instance. Growing past it traps at once (rather than returning -1 from
/// `memory.grow`) so the cause is known precisely.
pub(crate) struct MemoryLimiter {
    cap_bytes: usize,
    /// Set when a growth was refused: the size that was asked for.
    pub(crate) refused: Option<usize>,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.cap_bytes {
            self.refused = Some(desired);
            return Err(wasmtime::Error::msg(format!(
                "memory cap exceeded: asked for {desired} bytes, cap {} bytes",
                self.cap_bytes
            )));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

/// The clocks of the current call, behind the epoch deadline: the plugin's own time, which
/// leaves out time inside host model calls (a judge waiting for the model is not the plugin
/// being slow), and the call's wall-clock time, which counts everything.
pub(crate) struct CallClock {
    started: Instant,
    in_host: Duration,
    timeout: Duration,
    wall_timeout: Duration,
    /// Set when the plugin's own time ran out.
    pub(crate) timed_out: bool,
}

impl CallClock {
    fn new(timeout: Duration, wall_timeout: Duration) -> Self {
        CallClock {
            started: Instant::now(),
            in_host: Duration::ZERO,
            timeout,
            wall_timeout,
            timed_out: false,
        }
    }

    /// Time left of the plugin's own time, or why the call must stop.
    fn remaining(&self) -> Result<Duration, Expired> {
        let elapsed = self.started.elapsed();
        let own_left = self
            .timeout
            .checked_sub(elapsed.saturating_sub(self.in_host))
            .filter(|left| !left.is_zero())
            .ok_or(Expired::Own)?;
        let wall_left = self
            .wall_timeout
            .checked_sub(elapsed)
            .filter(|left| !left.is_zero())
            .ok_or(Expired::Wall)?;
        Ok(own_left.min(wall_left))
    }
}

/// Which clock of a call ran out.
enum Expired {
    /// The plugin's own time (`limits.timeout_ms`).
    Own,
    /// The call's wall-clock time (`limits.call_timeout_ms`).
    Wall,
}

/// Epoch ticks covering `duration` (at least one).
pub(crate) fn ticks(duration: Duration) -> u64 {
    let tick = EPOCH_TICK.as_nanos().max(1);
    u64::try_from(duration.as_nanos().div_ceil(tick))
        .unwrap_or(u64::MAX)
        .max(1)
}

/// What a plugin may do with `models`.
#[derive(Clone)]
pub(crate) enum ModelsGrant {
    /// The manifest did not grant it: every call returns `not-granted`.
    NotGranted,
    /// Granted; `None` when this host serves no models (e.g. `ponder plugins run`).
    Granted(Option<Arc<dyn ModelAccess>>),
}

/// Everything a sandboxed instance's store holds.
pub(crate) struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limiter: MemoryLimiter,
    pub(crate) clock: CallClock,
    limits: Limits,
    /// The current call's budget for model work.
    model_budget: ModelBudget,
    /// Model requests the current call has sent.
    model_requests: u64,
    /// Set when the current call ran out of a budget (its wall time or its generated tokens);
    /// the call is then interrupted.
    pub(crate) budget_exceeded: Option<BudgetExceeded>,
    plugin: Arc<str>,
    log: Arc<dyn LogSink>,
    models: ModelsGrant,
    log_budget: usize,
    stdout: MemoryOutputPipe,
    stderr: MemoryOutputPipe,
    stdout_logged: usize,
    stderr_logged: usize,
    /// What the plugin wrote to stderr during the current call (bounded), for trap messages.
    pub(crate) stderr_of_call: String,
}

/// Settings of a new sandboxed store.
pub(crate) struct SandboxSettings {
    pub(crate) plugin: Arc<str>,
    pub(crate) log: Arc<dyn LogSink>,
    pub(crate) models: ModelsGrant,
    pub(crate) limits: Limits,
    pub(crate) seed: u64,
}

/// SplitMix64: expands the seed into the bytes of the deterministic random source.
fn seeded_bytes(seed: u64, count: usize) -> Vec<u8> {
    let mut state = seed;
    let mut bytes = Vec::with_capacity(count + 8);
    while bytes.len() < count {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        bytes.extend_from_slice(&z.to_le_bytes());
    }
    bytes.truncate(count);
    bytes
}

struct FixedWallClock;

impl wasmtime_wasi::HostWallClock for FixedWallClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }

    fn now(&self) -> Duration {
        FIXED_WALL_CLOCK
    }
}

struct FixedMonotonicClock;

impl wasmtime_wasi::HostMonotonicClock for FixedMonotonicClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }

    fn now(&self) -> u64 {
        0
    }
}

/// A store with an empty WASI context, the memory cap, and the per-call deadline callback.
pub(crate) fn new_store(engine: &wasmtime::Engine, settings: SandboxSettings) -> Store<HostState> {
    let stdout = MemoryOutputPipe::new(PIPE_CAPACITY);
    let stderr = MemoryOutputPipe::new(PIPE_CAPACITY);
    let mut builder = WasiCtxBuilder::new();
    builder
        .stdout(stdout.clone())
        .stderr(stderr.clone())
        .wall_clock(FixedWallClock)
        .monotonic_clock(FixedMonotonicClock)
        .secure_random(wasmtime_wasi::Deterministic::new(seeded_bytes(
            settings.seed,
            4096,
        )))
        .insecure_random(wasmtime_wasi::Deterministic::new(seeded_bytes(
            settings.seed ^ 0x5EED,
            4096,
        )))
        .insecure_random_seed(u128::from(settings.seed))
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .socket_addr_check(|_, _| Box::pin(async { false }));
    let state = HostState {
        wasi: builder.build(),
        table: ResourceTable::new(),
        limiter: MemoryLimiter {
            cap_bytes: usize::try_from(u64::from(settings.limits.memory_mib) * 1024 * 1024)
                .unwrap_or(usize::MAX),
            refused: None,
        },
        clock: CallClock::new(Duration::from_secs(1), Duration::from_secs(1)),
        limits: settings.limits,
        model_budget: ModelBudget::unlimited(),
        model_requests: 0,
        budget_exceeded: None,
        plugin: settings.plugin,
        log: settings.log,
        models: settings.models,
        log_budget: LOG_BUDGET_PER_CALL,
        stdout,
        stderr,
        stdout_logged: 0,
        stderr_logged: 0,
        stderr_of_call: String::new(),
    };
    let mut store = Store::new(engine, state);
    store.limiter(|state| &mut state.limiter);
    store.epoch_deadline_callback(|mut context| {
        let state = context.data_mut();
        match state.clock.remaining() {
            Ok(left) => Ok(UpdateDeadline::Continue(ticks(left))),
            Err(Expired::Own) => {
                state.clock.timed_out = true;
                Ok(UpdateDeadline::Interrupt)
            }
            Err(Expired::Wall) => {
                state.budget_exceeded = Some(BudgetExceeded::Time {
                    call_timeout_ms: state.limits.call_timeout_ms,
                });
                Ok(UpdateDeadline::Interrupt)
            }
        }
    });
    store
}

impl HostState {
    /// Resets the per-call state (clocks, budgets, log budget) before a call.
    pub(crate) fn begin_call(&mut self) {
        let limits = &self.limits;
        self.clock = CallClock::new(
            Duration::from_millis(limits.timeout_ms),
            Duration::from_millis(limits.call_timeout_ms),
        );
        self.model_budget = ModelBudget::new(
            self.clock.started,
            Duration::from_millis(limits.call_timeout_ms),
            limits.generated_tokens,
        );
        self.model_requests = 0;
        self.budget_exceeded = None;
        self.limiter.refused = None;
        self.log_budget = LOG_BUDGET_PER_CALL;
        self.stderr_of_call.clear();
    }

    /// Moves what the plugin wrote to stdout/stderr since the last time into the log.
    pub(crate) fn flush_output(&mut self) {
        let stdout = self.stdout.contents();
        if stdout.len() > self.stdout_logged {
            let text = String::from_utf8_lossy(&stdout[self.stdout_logged..]).into_owned();
            self.stdout_logged = stdout.len();
            self.emit_lines(LogLevel::Info, "stdout", &text);
        }
        let stderr = self.stderr.contents();
        if stderr.len() > self.stderr_logged {
            let text = String::from_utf8_lossy(&stderr[self.stderr_logged..]).into_owned();
            self.stderr_logged = stderr.len();
            let room = 4096usize.saturating_sub(self.stderr_of_call.len());
            self.stderr_of_call.extend(text.chars().take(room));
            self.emit_lines(LogLevel::Warn, "stderr", &text);
        }
    }

    fn emit_lines(&mut self, level: LogLevel, stream: &str, text: &str) {
        for line in text.lines().filter(|line| !line.trim().is_empty()) {
            self.emit(level, &format!("{stream}: {line}"));
        }
    }

    fn emit(&mut self, level: LogLevel, message: &str) {
        if self.log_budget == 0 {
            return;
        }
        if message.len() > self.log_budget {
            self.log_budget = 0;
            self.log.record(
                &self.plugin,
                LogLevel::Warn,
                "log budget of this call used up; further records dropped",
            );
            return;
        }
        self.log_budget -= message.len();
        self.log.record(&self.plugin, level, message);
    }

    /// Runs a model call under the call's budget, its time excluded from the plugin's own time.
    /// `Err` (a trap) when a budget ran out during it: the plugin call is interrupted.
    fn with_models<R>(
        &mut self,
        requests: usize,
        call: impl FnOnce(&dyn ModelAccess, &mut ModelBudget) -> Result<R, ModelAccessError>,
    ) -> wasmtime::Result<Result<R, ModelAccessError>> {
        let access = match &self.models {
            ModelsGrant::NotGranted => return Ok(Err(ModelAccessError::NotGranted)),
            ModelsGrant::Granted(None) => {
                return Ok(Err(ModelAccessError::Failed(
                    "this host serves no models (no model is loaded in this command)".to_string(),
                )));
            }
            ModelsGrant::Granted(Some(access)) => Arc::clone(access),
        };
        if let Err(refusal) = self.admit_requests(requests) {
            return Ok(Err(refusal));
        }
        let started = Instant::now();
        let result = match self.model_budget.check_time() {
            std::ops::ControlFlow::Continue(()) => call(access.as_ref(), &mut self.model_budget),
            std::ops::ControlFlow::Break(_) => Err(ModelAccessError::Failed(
                "the call's time is used up".to_string(),
            )),
        };
        self.clock.in_host += started.elapsed();
        if let Some(exceeded) = self.model_budget.exceeded() {
            self.budget_exceeded = Some(exceeded);
            return Err(wasmtime::Error::msg(format!("budget exceeded: {exceeded}")));
        }
        Ok(result)
    }

    /// Counts a `models` call's requests against `limits.model_batch` and
    /// `limits.model_requests`; a call over either is refused before any work.
    fn admit_requests(&mut self, requests: usize) -> Result<(), ModelAccessError> {
        let count = u64::try_from(requests).unwrap_or(u64::MAX);
        if count > u64::from(self.limits.model_batch) {
            return Err(over_limit(
                &format!("{requests} requests in one call"),
                "model_batch",
                self.limits.model_batch,
            ));
        }
        let total = self.model_requests.saturating_add(count);
        if total > self.limits.model_requests {
            return Err(over_limit(
                &format!("{total} model requests in this plugin call"),
                "model_requests",
                self.limits.model_requests,
            ));
        }
        self.model_requests = total;
        Ok(())
    }

    /// `models.generate`, whatever the contract version: caps checked, one reply per request.
    fn serve_generate(
        &mut self,
        model: &str,
        requests: Vec<GenerateRequest>,
    ) -> wasmtime::Result<Result<Vec<String>, ModelAccessError>> {
        let cap = self.limits.max_new_tokens;
        if let Some((index, request)) = requests
            .iter()
            .enumerate()
            .find(|(_, request)| request.sampling.max_new_tokens > cap)
        {
            return Ok(Err(over_limit(
                &format!(
                    "generate request {index} asks for max-new-tokens {}",
                    request.sampling.max_new_tokens
                ),
                "max_new_tokens",
                cap,
            )));
        }
        let replies = self.with_models(requests.len(), |access, budget| {
            access.generate(model, &requests, budget)
        })?;
        Ok(replies.and_then(|replies| one_per_request(replies, requests.len(), "replies")))
    }

    /// `models.choice-logprobs`, whatever the contract version: caps checked, one result per
    /// request.
    fn serve_choice_logprobs(
        &mut self,
        model: &str,
        requests: Vec<ChoiceRequest>,
    ) -> wasmtime::Result<Result<Vec<Vec<f64>>, ModelAccessError>> {
        let cap = self.limits.choices;
        if let Some((index, request)) = requests
            .iter()
            .enumerate()
            .find(|(_, request)| request.choices.len() > cap as usize)
        {
            return Ok(Err(over_limit(
                &format!(
                    "choice request {index} has {} choices",
                    request.choices.len()
                ),
                "choices",
                cap,
            )));
        }
        let results = self.with_models(requests.len(), |access, budget| {
            access.choice_logprobs(model, &requests, budget)
        })?;
        Ok(results.and_then(|results| one_per_request(results, requests.len(), "results")))
    }

    /// `models.reward`, whatever the contract version: one reward per request, checked.
    fn serve_reward(
        &mut self,
        model: &str,
        requests: Vec<RewardRequest>,
    ) -> wasmtime::Result<Result<Vec<f64>, ModelAccessError>> {
        let rewards = self.with_models(requests.len(), |access, budget| {
            access.reward(model, &requests, budget)
        })?;
        Ok(rewards.and_then(|rewards| one_per_request(rewards, requests.len(), "rewards")))
    }
}

/// The `invalid-request` refusal of a request over one of the plugin's caps.
fn over_limit(what: &str, key: &str, limit: impl std::fmt::Display) -> ModelAccessError {
    ModelAccessError::InvalidRequest(format!(
        "{what}, over this plugin's limit limits.{key} = {limit} (raise it in the manifest's \
         plugin table)"
    ))
}

/// Checks that the host's model work returned one `what` per request.
fn one_per_request<T>(
    results: Vec<T>,
    requests: usize,
    what: &str,
) -> Result<Vec<T>, ModelAccessError> {
    if results.len() == requests {
        Ok(results)
    } else {
        Err(ModelAccessError::Failed(format!(
            "the host returned {} {what} for {requests} requests",
            results.len()
        )))
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Implements the host interfaces (`types`, `log`, `models`) of one contract version's bindings
/// by converting to the contract's types and calling the version-independent methods above.
macro_rules! serve_host_interfaces {
    ($version:ident) => {
        impl $version::types::Host for HostState {}

        impl $version::log::Host for HostState {
            fn log(&mut self, level: $version::log::Level, message: String) {
                self.emit(level.into(), &message);
            }
        }

        impl $version::models::Host for HostState {
            fn generate(
                &mut self,
                model: String,
                requests: Vec<$version::models::GenerateRequest>,
            ) -> wasmtime::Result<Result<Vec<String>, $version::models::ModelError>> {
                let requests = requests.into_iter().map(Into::into).collect();
                Ok(self.serve_generate(&model, requests)?.map_err(Into::into))
            }

            fn choice_logprobs(
                &mut self,
                model: String,
                requests: Vec<$version::models::ChoiceRequest>,
            ) -> wasmtime::Result<Result<Vec<Vec<f64>>, $version::models::ModelError>> {
                let requests = requests.into_iter().map(Into::into).collect();
                Ok(self
                    .serve_choice_logprobs(&model, requests)?
                    .map_err(Into::into))
            }

            fn reward(
                &mut self,
                model: String,
                requests: Vec<$version::models::RewardRequest>,
            ) -> wasmtime::Result<Result<Vec<f64>, $version::models::ModelError>> {
                let requests = requests.into_iter().map(Into::into).collect();
                Ok(self.serve_reward(&model, requests)?.map_err(Into::into))
            }
        }
    };
}

serve_host_interfaces!(v0_1_0);
serve_host_interfaces!(v0_2_0);

/// Adds the host interfaces (`types`, `log`, `models`) of every served contract version to the
/// linker (the judge world imports all three).
pub(crate) fn link_host_interfaces(
    linker: &mut wasmtime::component::Linker<HostState>,
) -> wasmtime::Result<()> {
    use wasmtime::component::HasSelf;
    v0_1_0::judge_world::Judge::add_to_linker::<HostState, HasSelf<HostState>>(linker, |state| {
        state
    })?;
    v0_2_0::judge_world::Judge::add_to_linker::<HostState, HasSelf<HostState>>(linker, |state| {
        state
    })?;
    Ok(())
}
