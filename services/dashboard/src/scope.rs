//! Which groups the dashboard shows: those named with `--group`, or every
//! group its login may read.

use shoal_protocol::token::validate_token;

use crate::DashboardError;

/// The groups shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Scope {
    /// Every group the login may read.
    Every,
    /// These groups only.
    Groups(Vec<String>),
}

impl Scope {
    /// The scope of the `--group` values (none: every group).
    pub(crate) fn of(groups: &[String]) -> Result<Self, DashboardError> {
        if groups.is_empty() {
            return Ok(Self::Every);
        }
        for group in groups {
            validate_token("group", group).map_err(|err| DashboardError::Setting {
                field: "group",
                reason: err.to_string(),
            })?;
        }
        let mut groups = groups.to_vec();
        groups.sort();
        groups.dedup();
        Ok(Self::Groups(groups))
    }

    /// The key filters of a bucket watch: `>`, or `<group>.>` for each group.
    pub(crate) fn key_filters(&self) -> Vec<String> {
        match self {
            Self::Every => vec![">".into()],
            Self::Groups(groups) => groups.iter().map(|group| format!("{group}.>")).collect(),
        }
    }

    /// Whether `group` is shown.
    pub(crate) fn shows(&self, group: &str) -> bool {
        match self {
            Self::Every => true,
            Self::Groups(groups) => groups.iter().any(|shown| shown == group),
        }
    }

    /// The groups named, for the page's filter (empty: every group).
    pub(crate) fn named(&self) -> &[String] {
        match self {
            Self::Every => &[],
            Self::Groups(groups) => groups,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scope_shows_only_its_groups_and_refuses_a_bad_name() {
        let scope = Scope::of(&["acme".into(), "beta".into(), "acme".into()]).expect("valid");
        assert_eq!(scope.key_filters(), vec!["acme.>", "beta.>"]);
        assert!(scope.shows("beta") && !scope.shows("other"));
        assert!(Scope::of(&[]).expect("every").shows("anything"));
        let refused = Scope::of(&["a.b".into()]).expect_err("a dot");
        assert!(refused.to_string().starts_with("invalid setting `group`"));
    }
}
