//! Target folder names that the target would refuse or merge, made distinct and acceptable
//! before anything is created: names longer than the target allows are shortened, and names
//! that differ only in case (on a target that does not tell case apart) get a suffix, ` (2)`,
//! ` (3)`, … in a deterministic order. Both come with a note for the report.
//!
//! Two planned folders with exactly the same target path are one folder on purpose (a folder
//! map can send several source folders to one target folder); only names that are different in
//! the plan but would be the same in the target are separated.

use std::collections::{BTreeMap, BTreeSet};

use o365_migrate_target::{Capabilities, FolderBase, FolderSpec};

/// A folder's parent in the target: the base (`""` or a well-known token) and the fitted path.
type Parent = (String, Vec<String>);
/// A planned name under a parent, and what it becomes (with the note when it changed).
type Choices = BTreeMap<(String, Vec<String>, String), (String, Option<String>)>;

/// What a target accepts in folder names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NameRules {
    /// The target treats names that differ only in case as the same folder.
    pub(crate) folds_case: bool,
    /// Longest name (one level) in characters, if limited.
    pub(crate) max_chars: Option<usize>,
}

impl NameRules {
    pub(crate) fn of(caps: &Capabilities) -> Self {
        Self {
            folds_case: caps.folder_names_fold_case,
            max_chars: caps.max_folder_name_chars,
        }
    }

    fn key(&self, name: &str) -> String {
        if self.folds_case {
            name.to_lowercase()
        } else {
            name.to_owned()
        }
    }

    fn fit(&self, name: &str, suffix: &str) -> String {
        match self.max_chars {
            Some(max) if name.chars().count() + suffix.chars().count() > max => {
                let keep = max.saturating_sub(suffix.chars().count());
                let cut: String = name.chars().take(keep).collect();
                format!("{}{suffix}", cut.trim_end())
            }
            _ => format!("{name}{suffix}"),
        }
    }
}

fn base_key(b: &FolderBase) -> String {
    match b {
        FolderBase::Root => String::new(),
        FolderBase::WellKnown(k) => k.token().to_owned(),
    }
}

/// Rewrites the paths of `specs` so that every distinct planned folder gets a distinct,
/// acceptable target name; returns the notes, one per renamed folder: (source folder, note).
pub(crate) fn fit_folder_names(
    specs: &mut [FolderSpec],
    rules: NameRules,
) -> Vec<(String, String)> {
    if !rules.folds_case && rules.max_chars.is_none() {
        return Vec::new();
    }
    let planned: Vec<Vec<String>> = specs.iter().map(|s| s.path.clone()).collect();
    let depth = planned.iter().map(Vec::len).max().unwrap_or(0);
    let mut notes = Vec::new();
    for d in 0..depth {
        // Per target parent (already fitted): the distinct planned names at this level, by the
        // name the target would see.
        let mut groups: BTreeMap<Parent, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
        for (s, p) in specs.iter().zip(&planned) {
            if p.len() <= d {
                continue;
            }
            let parent = (base_key(&s.base), s.path[..d].to_vec());
            groups
                .entry(parent)
                .or_default()
                .entry(rules.key(&rules.fit(&p[d], "")))
                .or_default()
                .insert(p[d].clone());
        }
        // The fitted name of each (parent, planned name).
        let mut chosen: Choices = BTreeMap::new();
        for (parent, by_key) in &groups {
            let mut taken: BTreeSet<String> = by_key.keys().cloned().collect();
            for names in by_key.values() {
                for (i, name) in names.iter().enumerate() {
                    let fitted = rules.fit(name, "");
                    let (out, why) = if i == 0 {
                        let why = (fitted != *name).then(|| {
                            format!(
                                "{name:?} is longer than the target allows ({} characters); \
                                 written as {fitted:?}",
                                rules.max_chars.unwrap_or(0)
                            )
                        });
                        (fitted, why)
                    } else {
                        let mut n = i + 1;
                        let mut candidate = rules.fit(name, &format!(" ({n})"));
                        while taken.contains(&rules.key(&candidate)) {
                            n += 1;
                            candidate = rules.fit(name, &format!(" ({n})"));
                        }
                        taken.insert(rules.key(&candidate));
                        let first = &names
                            .iter()
                            .next()
                            .map(|f| rules.fit(f, ""))
                            .unwrap_or_default();
                        let why = format!(
                            "{name:?} and {first:?} are one name to the target (it does not \
                             tell case apart{}); written as {candidate:?}",
                            if rules.max_chars.is_some_and(|m| name.chars().count() > m) {
                                ", and the name is cut to its length limit"
                            } else {
                                ""
                            }
                        );
                        (candidate, Some(why))
                    };
                    chosen.insert(
                        (parent.0.clone(), parent.1.clone(), name.clone()),
                        (out, why),
                    );
                }
            }
        }
        let mut noted: BTreeSet<(String, Vec<String>, String)> = BTreeSet::new();
        for (s, p) in specs.iter_mut().zip(&planned) {
            if p.len() <= d {
                continue;
            }
            let k = (base_key(&s.base), s.path[..d].to_vec(), p[d].clone());
            if let Some((out, why)) = chosen.get(&k) {
                if let Some(why) = why
                    && noted.insert(k.clone())
                {
                    notes.push((s.source.clone(), why.clone()));
                }
                s.path[d] = out.clone();
            }
        }
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::*;
    use o365_migrate_target::WellKnownFolder;

    const GRAPH: NameRules = NameRules {
        folds_case: true,
        max_chars: Some(255),
    };

    fn root(source: &str) -> FolderSpec {
        FolderSpec::at_root(
            source,
            source.split('/').map(String::from).collect::<Vec<_>>(),
        )
    }

    #[test]
    fn names_that_differ_only_in_case_are_separated_in_a_fixed_order() {
        for order in [["work", "Work", "WORK/sub"], ["WORK/sub", "work", "Work"]] {
            let mut specs: Vec<FolderSpec> = order.iter().map(|s| root(s)).collect();
            let notes = fit_folder_names(&mut specs, GRAPH);
            let by_source = |src: &str| {
                specs
                    .iter()
                    .find(|s| s.source == src)
                    .map(|s| s.path.join("/"))
                    .unwrap()
            };
            // Sorted by exact name: "WORK" < "Work" < "work".
            assert_eq!(by_source("WORK/sub"), "WORK/sub");
            assert_eq!(by_source("Work"), "Work (2)");
            assert_eq!(by_source("work"), "work (3)");
            assert_eq!(notes.len(), 2, "{notes:?}");
            assert!(
                notes
                    .iter()
                    .any(|(s, n)| s == "work" && n.contains("\"work (3)\""))
            );
        }
    }

    #[test]
    fn the_same_planned_folder_twice_is_one_folder_and_a_case_sensitive_target_keeps_both() {
        let mut specs = vec![root("Projects"), root("Projects"), root("projects")];
        let notes = fit_folder_names(
            &mut specs,
            NameRules {
                folds_case: false,
                max_chars: None,
            },
        );
        assert!(notes.is_empty());
        assert_eq!(specs[2].path, ["projects"]);
        let notes = fit_folder_names(&mut specs, GRAPH);
        assert_eq!(specs[0].path, ["Projects"]);
        assert_eq!(specs[1].path, ["Projects"]);
        assert_eq!(specs[2].path, ["projects (2)"]);
        assert_eq!(notes.len(), 1);
    }

    #[test]
    fn long_names_are_cut_and_a_suffix_never_clashes() {
        let long = "x".repeat(300);
        let mut specs = vec![
            root(&format!("{long}a")),
            root(&format!("{long}b")),
            root("Work (2)"),
            root("work"),
            root("Work"),
            FolderSpec::under("Inbox/Work", WellKnownFolder::Inbox, ["work"]),
        ];
        let notes = fit_folder_names(&mut specs, GRAPH);
        assert_eq!(specs[0].path[0], "x".repeat(255));
        assert_eq!(specs[1].path[0], format!("{} (2)", "x".repeat(251)));
        assert_eq!(specs[2].path, ["Work (2)"]);
        assert_eq!(specs[4].path, ["Work"]);
        assert_eq!(specs[3].path, ["work (3)"], "\"work (2)\" is taken");
        assert_eq!(specs[5].path, ["work"], "another parent: no clash");
        assert_eq!(notes.len(), 3, "{notes:?}");
    }
}
