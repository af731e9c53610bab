//! Configuration of the mock device: how many devices, how much memory each
//! has, and which SoC it pretends to be.
//!
//! The active configuration is fixed at `aclInit`: the value given to
//! [`configure`] if there was one, otherwise the environment
//! (`ASCEND_MOCK_DEVICES`, `ASCEND_MOCK_MEMORY`, `ASCEND_MOCK_SOC`) over the
//! defaults. `configure` is refused while the mock is initialised, so the
//! configuration never changes under live devices.
//!
//! The checking and fault-injection settings have their own modules and
//! are also read at `aclInit`: `ASCEND_MOCK_SANITIZER` and
//! `ASCEND_MOCK_LEAKS` (see `crate::sanitizer`), `ASCEND_MOCK_FAIL`,
//! `ASCEND_MOCK_DEVICE_LOST` and `ASCEND_MOCK_JITTER` (see `crate::fault`).
//!
//! Layer: gate layer: it names no other module of the crate.

use std::sync::Mutex;

/// Upper bound on the number of mock devices.
pub const MAX_DEVICES: u32 = 64;

/// What the mock device looks like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Number of devices reported by `aclrtGetDeviceCount`.
    pub devices: u32,
    /// Capacity of each device in bytes. Memory is virtual: pages are
    /// committed only when touched.
    pub memory_per_device: u64,
    /// The string returned by `aclrtGetSocName`.
    pub soc_name: String,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            devices: 2,
            memory_per_device: 32 << 30,
            soc_name: "Ascend910B3".to_string(),
        }
    }
}

/// Why a configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// `configure` was called between `aclInit` and `aclFinalize`.
    AlreadyInitialized,
    /// A value is out of range or could not be parsed.
    Invalid(String),
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigError::AlreadyInitialized => write!(
                f,
                "the mock device is initialised; configure it before aclInit or after aclFinalize"
            ),
            ConfigError::Invalid(why) => write!(f, "invalid mock configuration: {why}"),
        }
    }
}

impl std::error::Error for ConfigError {}

/// The configuration set by [`configure`], used at the next `aclInit`.
/// The configuration for the next `aclInit` (`pending`, when set by
/// [`configure`]) and the one fixed by the current `aclInit` (`active`,
/// from `aclInit` to `aclFinalize`).
struct State {
    pending: Option<Config>,
    active: Option<Config>,
}

static STATE: Mutex<State> = Mutex::new(State {
    pending: None,
    active: None,
});

fn state() -> std::sync::MutexGuard<'static, State> {
    STATE.lock().unwrap_or_else(|e| e.into_inner())
}

impl Config {
    /// Checks the ranges of every field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.devices == 0 || self.devices > MAX_DEVICES {
            return Err(ConfigError::Invalid(format!(
                "devices must be between 1 and {MAX_DEVICES}, got {}",
                self.devices
            )));
        }
        if self.memory_per_device < 1 << 20 {
            return Err(ConfigError::Invalid(format!(
                "memory_per_device must be at least 1 MiB, got {} bytes",
                self.memory_per_device
            )));
        }
        if self.memory_per_device > 1 << 50 {
            return Err(ConfigError::Invalid(format!(
                "memory_per_device must be at most 1 PiB, got {} bytes",
                self.memory_per_device
            )));
        }
        if self.soc_name.is_empty() || self.soc_name.contains('\0') {
            return Err(ConfigError::Invalid(
                "soc_name must be non-empty and contain no NUL".to_string(),
            ));
        }
        Ok(())
    }

    /// The defaults overridden by the `ASCEND_MOCK_*` environment variables.
    pub fn from_env() -> Result<Config, ConfigError> {
        let mut cfg = Config::default();
        if let Some(v) = env_value("ASCEND_MOCK_DEVICES") {
            cfg.devices = v.trim().parse().map_err(|_| {
                ConfigError::Invalid(format!("ASCEND_MOCK_DEVICES={v:?} is not a device count"))
            })?;
        }
        if let Some(v) = env_value("ASCEND_MOCK_MEMORY") {
            cfg.memory_per_device = parse_size(&v)
                .map_err(|why| ConfigError::Invalid(format!("ASCEND_MOCK_MEMORY={v:?}: {why}")))?;
        }
        if let Some(v) = env_value("ASCEND_MOCK_SOC") {
            cfg.soc_name = v;
        }
        cfg.validate()?;
        Ok(cfg)
    }
}

fn env_value(name: &str) -> Option<String> {
    std::env::var_os(name).map(|v| v.to_string_lossy().into_owned())
}

/// Parses a byte count such as `1048576`, `512M`, `64MiB`, `16GiB`, `2g`.
/// `K`/`M`/`G`/`T` and their `KiB`/`KB` forms are all powers of 1024.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, suffix) = t.split_at(split);
    if digits.is_empty() {
        return Err("expected a number of bytes, optionally with a K/M/G/T suffix".to_string());
    }
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{digits} does not fit in 64 bits"))?;
    let shift = match suffix.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        other => return Err(format!("unknown size suffix {other:?}")),
    };
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| format!("{t} does not fit in 64 bits"))
}

/// Sets the configuration used by the next `aclInit`.
///
/// Refused with [`ConfigError::AlreadyInitialized`] while the mock is
/// initialised.
pub fn configure(cfg: Config) -> Result<(), ConfigError> {
    cfg.validate()?;
    // The check and the store share the lock that aclInit's activation
    // takes, so aclInit cannot start in between.
    let mut s = state();
    if s.active.is_some() {
        return Err(ConfigError::AlreadyInitialized);
    }
    s.pending = Some(cfg);
    Ok(())
}

/// The configuration for the next `aclInit`: the configured one, else the
/// environment's.
fn pending_of(s: &State) -> Result<Config, ConfigError> {
    match s.pending.clone() {
        Some(cfg) => Ok(cfg),
        None => Config::from_env(),
    }
}

/// `aclInit`: fixes the configuration for the next `aclFinalize` (the
/// pending one, see [`configure`]) and returns it.
pub(crate) fn activate() -> Result<Config, ConfigError> {
    let mut s = state();
    let cfg = pending_of(&s)?;
    s.active = Some(cfg.clone());
    Ok(cfg)
}

/// `aclFinalize`: no configuration is active any more.
pub(crate) fn deactivate() {
    state().active = None;
}

/// The configuration in effect: the active one while initialised, else the
/// one the next `aclInit` would use (defaults when the environment is
/// invalid).
pub fn config() -> Config {
    let s = state();
    s.active
        .clone()
        .unwrap_or_else(|| pending_of(&s).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_suffixes() {
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("16GiB"), Ok(16 << 30));
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size(" 2 g "), Ok(2 << 30));
        assert_eq!(parse_size("3KB"), Ok(3 << 10));
        assert!(parse_size("").is_err());
        assert!(parse_size("GiB").is_err());
        assert!(
            parse_size("12XB")
                .unwrap_err()
                .contains("unknown size suffix")
        );
        assert!(parse_size("99999999999999999999").is_err());
        assert!(parse_size("99999999999T").is_err());
    }

    #[test]
    fn validation_rejects_bad_values() {
        assert!(Config::default().validate().is_ok());
        let zero = Config {
            devices: 0,
            ..Config::default()
        };
        assert!(matches!(zero.validate(), Err(ConfigError::Invalid(_))));
        let tiny = Config {
            memory_per_device: 10,
            ..Config::default()
        };
        assert!(matches!(tiny.validate(), Err(ConfigError::Invalid(_))));
        let nameless = Config {
            soc_name: String::new(),
            ..Config::default()
        };
        assert!(nameless.validate().is_err());
    }

    #[test]
    fn configure_is_refused_while_initialised() {
        crate::tests_support::init();
        assert_eq!(
            configure(Config::default()),
            Err(ConfigError::AlreadyInitialized)
        );
        assert!(config().devices >= 2);
    }
}
