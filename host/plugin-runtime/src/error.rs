//! Typed errors of plugin loading and calls. Every error names the plugin, the call and the cause;
//! none of them aborts the host.
//!
//! Names: [`PluginError`] is the host's envelope around any failure of a plugin load or call;
//! [`PluginFailure`] (from `ponder-contract`, WIT `plugin-error`) is what a plugin itself reports,
//! carried as [`Cause::Plugin`]; `ModelAccessError` (WIT `model-error`) is what a `models` call
//! returns to a plugin. The `ponder-contract` crate docs draw the nesting.

use ponder_contract::PluginFailure;

use ponder_manifest::Role;
use std::fmt;
use std::path::PathBuf;

/// A failed plugin load or call: the host's envelope, naming the plugin, its role, the call and
/// the [`Cause`] (which may be the plugin's own [`PluginFailure`]).
#[derive(thiserror::Error, Debug)]
#[error("plugin `{plugin}` ({role}), call `{call}`: {cause}")]
pub struct PluginError {
    /// The plugin's name (its file stem).
    pub plugin: String,
    /// Its role.
    pub role: Role,
    /// The call: `load`, `instantiate`, `configure`, `render`, `parse`, `get-output-format`, `judge`
    /// or `select`.
    pub call: &'static str,
    /// What went wrong.
    pub cause: Cause,
}

/// How a call of a backend (a component or a native library) failed: the name of the call that
/// failed (`instantiate` or `configure` when a fresh instance could not be made for another call)
/// and why. `Plugin` adds which plugin and turns it into a [`PluginError`].
pub(crate) type CallFailure = (&'static str, Cause);

/// The result of a backend call.
pub(crate) type CallResult<T> = Result<T, CallFailure>;

/// What went wrong in a plugin load or call.
#[derive(Debug, Clone, PartialEq)]
pub enum Cause {
    /// The plugin file could not be read.
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        message: String,
    },
    /// The file is not a valid WebAssembly component (or native library).
    Invalid(String),
    /// The component implements another world than the role needs.
    WrongWorld {
        /// What the role needs, e.g. ``world `judge` (exports ponder:plugin/judging@0.1.0 or
        /// ponder:plugin/judging@0.2.0)``.
        expected: String,
        /// What the component exports.
        found: String,
    },
    /// The component was built against an incompatible version of the contract.
    IncompatibleVersion {
        /// What the host serves, e.g. `ponder:plugin/judging@0.1.0 or
        /// ponder:plugin/judging@0.2.0 (compatible: same major.minor)` or `native ABI version 1
        /// (exactly)`.
        expected: String,
        /// The interface the component exports, e.g. `ponder:plugin/judging@0.3.0 (newer than
        /// this host supports)`.
        found: String,
    },
    /// The component imports something the host does not provide.
    Link(String),
    /// The call used up its fuel budget.
    OutOfFuel {
        /// The budget of one call.
        fuel: u64,
    },
    /// The call ran past its time limit.
    Deadline {
        /// The limit of one call.
        timeout_ms: u64,
    },
    /// The call ran out of a budget of its model work (wall-clock time or generated tokens) and
    /// was interrupted.
    Budget(crate::capability::BudgetExceeded),
    /// The plugin tried to grow its memory past the cap.
    Memory {
        /// The cap.
        limit_mib: u32,
        /// The size it asked for, in bytes.
        requested_bytes: usize,
    },
    /// The call stack overflowed (deep recursion).
    StackOverflow,
    /// The plugin trapped (a panic, an `unreachable`, an out-of-bounds access ...).
    Trap {
        /// The trap message.
        message: String,
        /// The tail of what the plugin wrote to stderr (a Rust panic message, say).
        stderr: String,
    },
    /// The plugin returned a `plugin-error`.
    Plugin(PluginFailure),
    /// The plugin returned output that breaks the contract (a NaN score, a pair index out of
    /// range ...).
    InvalidOutput(String),
    /// The call does not exist for this role (`judge` on a selector, say).
    WrongRole,
    /// A native plugin broke the native ABI (bad JSON, unknown status ...).
    Native(String),
    /// The host failed for another reason.
    Host(String),
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cause::Read { path, message } => write!(f, "cannot read {}: {message}", path.display()),
            Cause::Invalid(message) => write!(f, "not a valid plugin: {message}"),
            Cause::WrongWorld { expected, found } => {
                write!(f, "wrong world: expected {expected}, found {found}")
            }
            Cause::IncompatibleVersion { expected, found } => write!(
                f,
                "incompatible contract version: expected {expected}, found {found}"
            ),
            Cause::Link(message) => write!(f, "cannot link: {message}"),
            Cause::OutOfFuel { fuel } => {
                write!(
                    f,
                    "out of fuel: the call used its whole budget of {fuel} fuel"
                )
            }
            Cause::Deadline { timeout_ms } => {
                write!(
                    f,
                    "deadline exceeded: the call ran longer than {timeout_ms} ms"
                )
            }
            Cause::Memory {
                limit_mib,
                requested_bytes,
            } => write!(
                f,
                "memory cap exceeded: asked for {requested_bytes} bytes of linear memory, the cap is {limit_mib} MiB"
            ),
            Cause::Budget(exceeded) => write!(f, "budget exceeded: {exceeded}"),
            Cause::StackOverflow => write!(f, "stack overflow (call stack exhausted)"),
            Cause::Trap { message, stderr } => {
                write!(f, "trap: {message}")?;
                if !stderr.is_empty() {
                    write!(f, "; plugin stderr: {stderr}")?;
                }
                Ok(())
            }
            Cause::Plugin(failure) => write!(f, "the plugin reported {failure}"),
            Cause::InvalidOutput(message) => write!(f, "invalid output: {message}"),
            Cause::WrongRole => write!(f, "this call does not exist for this plugin's role"),
            Cause::Native(message) => write!(f, "native ABI violation: {message}"),
            Cause::Host(message) => write!(f, "host error: {message}"),
        }
    }
}
