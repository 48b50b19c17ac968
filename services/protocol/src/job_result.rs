//! A job's result as stored: the JSON its result file holds, kept as the job
//! wrote it (no number rounded, no key reordered), or else its text as a
//! JSON string.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// The result a job left, as JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobResult(Box<RawValue>);

impl JobResult {
    /// The result a job left as `text`: that JSON when it is JSON, else a
    /// JSON string holding the text.
    pub fn from_text(text: &str) -> Self {
        let trimmed = text.trim();
        if !trimmed.is_empty() {
            if let Ok(json) = RawValue::from_string(trimmed.to_string()) {
                return Self(json);
            }
        }
        Self(serde_json::value::to_raw_value(text).unwrap_or_else(|_| RawValue::NULL.to_owned()))
    }

    /// The result as JSON text.
    pub fn json(&self) -> &str {
        self.0.get()
    }

    /// The result as people read it: a string's text, or the JSON.
    pub fn text(&self) -> String {
        serde_json::from_str::<String>(self.json()).unwrap_or_else(|_| self.json().to_string())
    }
}

impl PartialEq for JobResult {
    fn eq(&self, other: &Self) -> bool {
        self.json() == other.json()
    }
}

impl Eq for JobResult {}

impl JsonSchema for JobResult {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "JobResult".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "The JSON the job's result file held, as written; else its text as a string"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_json_result_is_kept_as_written_and_text_becomes_a_string() {
        let json =
            JobResult::from_text("{\"rows\": 12, \"big\": 123456789012345678901234567890}\n");
        assert_eq!(
            json.json(),
            "{\"rows\": 12, \"big\": 123456789012345678901234567890}"
        );
        let record = serde_json::json!({ "result": json });
        assert_eq!(record["result"]["rows"], 12);

        let text = JobResult::from_text("done: 12 rows\n");
        assert_eq!(text.json(), "\"done: 12 rows\\n\"");
        assert_eq!(text.text(), "done: 12 rows\n");
        assert_eq!(JobResult::from_text("").json(), "\"\"");
        assert_eq!(JobResult::from_text("42").json(), "42");
    }

    #[test]
    fn a_result_reads_back_as_it_was_stored() {
        let stored = r#"{"result":[1,"two",{"three":3.000}]}"#;
        #[derive(Deserialize, Serialize)]
        struct Holder {
            result: JobResult,
        }
        let holder: Holder = serde_json::from_str(stored).expect("read");
        assert_eq!(serde_json::to_string(&holder).expect("write"), stored);
    }
}
