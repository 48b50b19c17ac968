//! CPU and memory amounts as Kubernetes writes them (`500m`, `2`; `512Mi`,
//! `2Gi`, `1G`, `1048576`): read in one place, by `apply`, `render` and the
//! supervisor alike.

use thiserror::Error;

/// An amount that cannot be read, naming its field.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{field}: `{text}` is not a {what} amount (write e.g. {example})")]
pub struct InvalidAmount {
    /// The field, e.g. `pool.resources.limits.cpu`.
    pub field: String,
    /// The text given.
    pub text: String,
    what: &'static str,
    example: &'static str,
}

/// A CPU amount in cores: `500m` is half a core, `2` two.
pub fn parse_cpu(field: &str, text: &str) -> Result<f64, InvalidAmount> {
    let bad = || InvalidAmount {
        field: field.to_string(),
        text: text.to_string(),
        what: "CPU",
        example: "500m or 2",
    };
    let (number, scale) = match text.strip_suffix('m') {
        Some(millis) => (millis, 1000.0),
        None => (text, 1.0),
    };
    let cores = number.trim().parse::<f64>().map_err(|_| bad())? / scale;
    if cores.is_finite() && cores > 0.0 {
        Ok(cores)
    } else {
        Err(bad())
    }
}

/// A memory amount in bytes.
pub fn parse_memory(field: &str, text: &str) -> Result<u64, InvalidAmount> {
    let bad = || InvalidAmount {
        field: field.to_string(),
        text: text.to_string(),
        what: "memory",
        example: "512Mi or 2Gi",
    };
    let units: [(&str, u64); 8] = [
        ("Ki", 1 << 10),
        ("Mi", 1 << 20),
        ("Gi", 1 << 30),
        ("Ti", 1 << 40),
        ("k", 1_000),
        ("M", 1_000_000),
        ("G", 1_000_000_000),
        ("T", 1_000_000_000_000),
    ];
    let (number, unit) = units
        .iter()
        .find_map(|(suffix, size)| text.strip_suffix(suffix).map(|number| (number, *size)))
        .unwrap_or((text, 1));
    let value = number.trim().parse::<u64>().map_err(|_| bad())?;
    match value.checked_mul(unit) {
        Some(bytes) if bytes > 0 => Ok(bytes),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_is_read_in_cores_and_millicores() {
        assert_eq!(parse_cpu("cpu", "500m"), Ok(0.5));
        assert_eq!(parse_cpu("cpu", "2"), Ok(2.0));
        assert_eq!(parse_cpu("cpu", "1.5"), Ok(1.5));
        let err = parse_cpu("pool.resources.requests.cpu", "fast").expect_err("no amount");
        assert_eq!(
            err.to_string(),
            "pool.resources.requests.cpu: `fast` is not a CPU amount (write e.g. 500m or 2)"
        );
        assert!(parse_cpu("cpu", "0").is_err() && parse_cpu("cpu", "NaN").is_err());
    }

    #[test]
    fn memory_is_read_in_binary_and_decimal_units() {
        assert_eq!(parse_memory("memory", "512Mi"), Ok(512 << 20));
        assert_eq!(parse_memory("memory", "1G"), Ok(1_000_000_000));
        assert_eq!(parse_memory("memory", "1048576"), Ok(1 << 20));
        assert!(parse_memory("memory", "lots").is_err());
        assert!(parse_memory("memory", "0Mi").is_err());
        assert!(parse_memory("memory", "99999999999Ti").is_err());
    }
}
