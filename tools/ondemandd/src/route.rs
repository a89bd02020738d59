// SPDX-License-Identifier: GPL-2.0
//! Source routing (`[[source]]` tables of the config file): a [`BlobStore`] over several, each
//! with a rule on the volume key and the cookie key. The first rule that matches serves the
//! blob; a blob that matches none is refused (NotFound, so its OPEN fails with -ENOENT).

use crate::blobs::{BlobRead, BlobStore};
use crate::config::Rule;
use std::io;
use std::sync::Arc;

pub struct RouteStore {
    routes: Vec<(Rule, Arc<dyn BlobStore>)>,
}

impl RouteStore {
    pub fn new(routes: Vec<(Rule, Arc<dyn BlobStore>)>) -> RouteStore {
        RouteStore { routes }
    }
}

impl BlobStore for RouteStore {
    /// Without a volume key only rules that do not name a volume can match.
    fn open(&self, key: &[u8]) -> io::Result<Box<dyn BlobRead>> {
        self.open_in(b"", key)
    }

    fn open_in(&self, volume: &[u8], key: &[u8]) -> io::Result<Box<dyn BlobRead>> {
        for (rule, store) in &self.routes {
            let any_volume = rule.volume.is_none();
            if (any_volume || !volume.is_empty()) && rule.matches(volume, key) {
                return store.open_in(volume, key).map_err(|e| {
                    io::Error::new(e.kind(), format!("{e} (source from {})", rule.at))
                });
            }
        }
        let vol = String::from_utf8_lossy(volume);
        Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "no [[source]] of the config file matches volume {:?} blob {:?}: refused",
                vol.trim_end_matches('\0'),
                String::from_utf8_lossy(key)
            ),
        ))
    }

    fn describe(&self) -> String {
        let v: Vec<String> = self
            .routes
            .iter()
            .map(|(r, s)| {
                let vol = r.volume.as_deref().unwrap_or("*");
                let blobs = r.blobs.as_ref().map_or("*".to_string(), |b| b.join(","));
                format!("[volume {vol} blobs {blobs}: {}]", s.describe())
            })
            .collect();
        format!("{} source(s): {}", v.len(), v.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blobs::tests::TempDir;
    use crate::blobs::DirStore;
    use crate::config::RuleSource;

    fn rule(volume: Option<&str>, blobs: Option<&[&str]>) -> Rule {
        Rule {
            volume: volume.map(String::from),
            blobs: blobs.map(|b| b.iter().map(|s| s.to_string()).collect()),
            source: RuleSource::Dir("/".into()),
            ca_file: None,
            at: "c.toml:1".into(),
        }
    }

    #[test]
    fn first_match_wins_and_no_match_is_refused() {
        let d = TempDir::new("route");
        for sub in ["a", "b"] {
            std::fs::create_dir(d.0.join(sub)).unwrap();
            std::fs::write(d.0.join(sub).join("meta"), sub.repeat(3)).unwrap();
            std::fs::write(d.0.join(sub).join("blob1"), sub.repeat(5)).unwrap();
        }
        let a: Arc<dyn BlobStore> = Arc::new(DirStore(d.0.join("a")));
        let b: Arc<dyn BlobStore> = Arc::new(DirStore(d.0.join("b")));
        let s = RouteStore::new(vec![
            (rule(Some("dom"), Some(&["meta"])), Arc::clone(&a)),
            (rule(None, Some(&["blob1", "meta"])), b),
        ]);
        let size = |v: &[u8], k: &[u8]| s.open_in(v, k).map(|b| b.size());
        assert_eq!(size(b"erofs,dom\0", b"meta").unwrap(), 3, "first rule");
        assert_eq!(
            size(b"erofs,other\0", b"meta").unwrap(),
            3,
            "second rule: b"
        );
        assert!(s
            .open_in(b"erofs,other\0", b"meta")
            .unwrap()
            .location()
            .contains("/b/"));
        assert!(s
            .open_in(b"erofs,dom\0", b"blob1")
            .unwrap()
            .location()
            .contains("/b/"));
        let e = s.open_in(b"erofs,dom\0", b"blob2").err().unwrap();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(e.to_string().contains("no [[source]]"), "{e}");
        assert!(e.to_string().contains("\"erofs,dom\""), "{e}");
        // a matching rule whose source lacks the blob: its error, naming the rule
        let s = RouteStore::new(vec![(rule(None, None), a)]);
        let e = s.open_in(b"v", b"nope").err().unwrap();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(e.to_string().contains("c.toml:1"), "{e}");
        assert!(s.describe().contains("1 source(s)"));
        // open() without a volume key: rules naming a volume do not match
        let s = RouteStore::new(vec![(
            rule(Some("dom"), None),
            Arc::new(DirStore(d.0.join("a"))),
        )]);
        assert!(s.open(b"meta").is_err());
    }
}
