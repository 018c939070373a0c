"""The one source of the API's fixed lists, as plain strings: the CLI's validation and completion and the
sandbox's checks use them. No imports: the completion path (imported on every run) loads it for nothing.
``valyent_cli.api.types`` re-exports them beside the typed enums."""

#: the states ``wait`` accepts
STATES: tuple[str, ...] = ("running", "stopped", "destroyed")
#: the restart policies
RESTART_POLICIES: tuple[str, ...] = ("always", "on-failure", "never")
#: stop signals: exactly those a Ravel node accepts (`internal/signals/signals.go` FromString; checked on the node,
#: so another fails later, in the background): completion offers them, validation and the sandbox accept only them
SIGNALS: tuple[str, ...] = (
    "SIGHUP", "SIGINT", "SIGQUIT", "SIGILL", "SIGTRAP", "SIGABRT", "SIGFPE", "SIGKILL", "SIGUSR1", "SIGSEGV",
    "SIGPIPE", "SIGALRM", "SIGTERM",
)
#: what the SDK sends as exec's `timeout_ms` when the caller gives none: Ravel requires the field
#: (api/machines.go ExecOptions, no omitempty)
DEFAULT_EXEC_TIMEOUT_MS = 30_000
#: the stop signal when a machine names none, as Ravel has it
DEFAULT_STOP_SIGNAL = "SIGTERM"
#: a log or event timestamp is read by its magnitude: above MS_ABOVE it is milliseconds, above US_ABOVE
#: microseconds, above NS_ABOVE nanoseconds, else seconds (Ravel's nodes write seconds, the sandbox milliseconds)
MS_ABOVE = 10**11
US_ABOVE = 10**14
NS_ABOVE = 10**17
#: (limit, scale) in the order to test them: above ``limit``, divide by ``scale`` to get seconds
TIMESTAMP_SCALES: tuple[tuple[int, float], ...] = ((NS_ABOVE, 1e9), (US_ABOVE, 1e6), (MS_ABOVE, 1e3))
#: log sources
LOG_SOURCES: tuple[str, ...] = ("stdout", "stderr")
