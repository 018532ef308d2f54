use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use eddy_storage::{Store, WriteBatch, keys};
use parking_lot::RwLock;

use crate::{CatalogError, CatalogResult, RelId, Relation, RelationKind};

/// An immutable view of every definition at one moment.
#[derive(Clone, Default, Debug)]
pub struct Snapshot {
    by_id: BTreeMap<RelId, Arc<Relation>>,
    by_name: HashMap<String, RelId>,
}

impl Snapshot {
    pub fn get(&self, name: &str) -> Option<&Arc<Relation>> {
        self.by_name.get(name).and_then(|id| self.by_id.get(id))
    }

    pub fn by_id(&self, id: RelId) -> Option<&Arc<Relation>> {
        self.by_id.get(&id)
    }

    /// The relation of a name, or `UnknownRelation`.
    pub fn resolve(&self, name: &str) -> CatalogResult<&Arc<Relation>> {
        self.get(name)
            .ok_or_else(|| CatalogError::UnknownRelation(name.to_string()))
    }

    /// Every relation in creation order (which is a topological order of dependencies).
    pub fn relations(&self) -> impl Iterator<Item = &Arc<Relation>> {
        self.by_id.values()
    }

    pub fn of_kind(&self, kind: RelationKind) -> impl Iterator<Item = &Arc<Relation>> {
        self.relations().filter(move |r| r.kind == kind)
    }

    /// Relations that read `id` directly.
    pub fn dependents(&self, id: RelId) -> impl Iterator<Item = &Arc<Relation>> {
        self.relations().filter(move |r| r.depends_on.contains(&id))
    }

    /// `id` and everything that depends on it transitively, dependents last-created first,
    /// which is the order in which they can be dropped.
    pub fn drop_order(&self, id: RelId) -> Vec<Arc<Relation>> {
        let mut found: BTreeMap<RelId, Arc<Relation>> = BTreeMap::new();
        let mut todo = vec![id];
        while let Some(next) = todo.pop() {
            if let Some(rel) = self.by_id.get(&next)
                && found.insert(next, rel.clone()).is_none()
            {
                todo.extend(self.dependents(next).map(|r| r.id));
            }
        }
        found.into_values().rev().collect()
    }

    /// A snapshot of exactly these relations.
    pub fn from_relations(relations: impl IntoIterator<Item = Relation>) -> Snapshot {
        relations
            .into_iter()
            .fold(Snapshot::default(), |s, r| s.with(Arc::new(r)))
    }

    /// The definitions as a view defined before some of its inputs were widened sees them:
    /// each relation of its [`input_columns`](Relation::input_columns) cut to the columns it
    /// had then.
    pub fn as_seen_by(self: &Arc<Self>, view: &Relation) -> Arc<Snapshot> {
        let mut seen = None::<Snapshot>;
        for (&id, &width) in &view.input_columns {
            let current = seen.as_ref().map_or(&**self, |s| s);
            if let Some(rel) = current.by_id(id).filter(|r| r.columns.len() > width) {
                let mut narrow = (**rel).clone();
                narrow.columns.truncate(width);
                seen = Some(current.with(Arc::new(narrow)));
            }
        }
        seen.map_or_else(|| self.clone(), Arc::new)
    }

    fn with(&self, rel: Arc<Relation>) -> Snapshot {
        let mut next = self.clone();
        // A renamed relation leaves its old name free.
        if let Some(old) = next.by_id.get(&rel.id)
            && old.name != rel.name
        {
            next.by_name.remove(&old.name);
        }
        next.by_name.insert(rel.name.clone(), rel.id);
        next.by_id.insert(rel.id, rel);
        next
    }

    fn without(&self, id: RelId) -> Snapshot {
        let mut next = self.clone();
        if let Some(rel) = next.by_id.remove(&id) {
            next.by_name.remove(&rel.name);
        }
        next
    }
}

/// The live catalog: the current snapshot plus the id allocator.
///
/// Changes are staged into a [`WriteBatch`] by the caller (the epoch driver), and applied to
/// memory with [`Catalog::install`] / [`Catalog::forget`] once that batch has committed.
pub struct Catalog {
    current: RwLock<Arc<Snapshot>>,
    next_id: RwLock<RelId>,
}

const NEXT_ID: &str = "next_rel_id";

impl Catalog {
    /// Loads every definition from the store.
    pub fn load(store: &Store) -> CatalogResult<Self> {
        let mut snapshot = Snapshot::default();
        for entry in store.scan_prefix(&keys::catalog_prefix()) {
            let (_, value) = entry?;
            let rel: Relation =
                serde_json::from_slice(&value).map_err(|e| CatalogError::Corrupt(e.to_string()))?;
            snapshot = snapshot.with(Arc::new(rel));
        }
        let next_id = match store.get(&keys::meta(NEXT_ID))? {
            Some(v) => u64::from_be_bytes(
                v.as_ref()
                    .try_into()
                    .map_err(|_| CatalogError::Corrupt("next relation id".into()))?,
            ),
            None => 1,
        };
        Ok(Self {
            current: RwLock::new(Arc::new(snapshot)),
            next_id: RwLock::new(next_id),
        })
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.read().clone()
    }

    /// Reserves an id for a new relation and stages the allocator's new value.
    pub fn allocate_id(&self, batch: &mut WriteBatch) -> RelId {
        let mut next = self.next_id.write();
        let id = *next;
        *next += 1;
        batch.put(keys::meta(NEXT_ID), next.to_be_bytes());
        id
    }

    /// Stages a definition's write.
    pub fn stage_put(&self, rel: &Relation, batch: &mut WriteBatch) {
        let json = serde_json::to_vec(rel).expect("a relation always serializes");
        batch.put(keys::catalog(rel.id), json);
    }

    /// Stages a definition's removal.
    pub fn stage_delete(&self, id: RelId, batch: &mut WriteBatch) {
        batch.delete(keys::catalog(id));
    }

    /// Makes a committed definition visible.
    pub fn install(&self, rel: Arc<Relation>) {
        self.install_all([rel]);
    }

    /// Makes several committed definitions visible at once (new versions of existing ones
    /// replace them, by id).
    pub fn install_all(&self, rels: impl IntoIterator<Item = Arc<Relation>>) {
        let mut cur = self.current.write();
        let mut next = (**cur).clone();
        for rel in rels {
            next = next.with(rel);
        }
        *cur = Arc::new(next);
    }

    /// Forgets a committed drop.
    pub fn forget(&self, id: RelId) {
        let mut cur = self.current.write();
        *cur = Arc::new(cur.without(id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Column, SqlType};

    fn rel(id: RelId, name: &str, kind: RelationKind, deps: Vec<RelId>) -> Relation {
        let column = Column::nullable("a", SqlType::BigInt);
        Relation {
            id,
            depends_on: deps,
            ..Relation::new(name, kind, vec![column])
        }
    }

    #[test]
    fn definitions_persist_and_drop_order_puts_dependents_first() {
        let store = Store::temporary().unwrap();
        let catalog = Catalog::load(&store).unwrap();
        let mut batch = WriteBatch::default();
        let s = catalog.allocate_id(&mut batch);
        let v = catalog.allocate_id(&mut batch);
        let w = catalog.allocate_id(&mut batch);
        let rels = [
            rel(s, "s", RelationKind::Stream, vec![]),
            rel(v, "v", RelationKind::MaterializedView, vec![s]),
            rel(w, "w", RelationKind::MaterializedView, vec![v]),
        ];
        for r in &rels {
            catalog.stage_put(r, &mut batch);
        }
        store.commit(batch, false).unwrap();

        let reloaded = Catalog::load(&store).unwrap();
        let snap = reloaded.snapshot();
        assert_eq!(snap.resolve("v").unwrap().depends_on, vec![s]);
        let order: Vec<_> = snap.drop_order(s).iter().map(|r| r.name.clone()).collect();
        assert_eq!(order, vec!["w", "v", "s"]);
        let mut batch = WriteBatch::default();
        assert_eq!(reloaded.allocate_id(&mut batch), w + 1);
    }

    #[test]
    fn a_view_sees_its_inputs_as_wide_as_they_were() {
        let mut stream = rel(1, "s", RelationKind::Stream, vec![]);
        let extra = Column {
            name: "b".into(),
            ..stream.columns[0].clone()
        };
        stream.columns.push(extra);
        let mut view = rel(2, "v", RelationKind::MaterializedView, vec![1]);
        let snap = Arc::new(Snapshot::from_relations([stream, view.clone()]));
        assert!(Arc::ptr_eq(&snap.as_seen_by(&view), &snap));
        view.input_columns.insert(1, 1);
        let seen = snap.as_seen_by(&view);
        assert_eq!(seen.resolve("s").unwrap().columns.len(), 1);
        assert_eq!(snap.resolve("s").unwrap().columns.len(), 2);
        let json = serde_json::to_string(&view).unwrap();
        let back: Relation = serde_json::from_str(&json).unwrap();
        assert_eq!(back.input_columns, view.input_columns);
    }

    #[test]
    fn a_view_defined_before_keyed_rows_stays_a_multiset() {
        let mut view = rel(2, "v", RelationKind::MaterializedView, vec![1]);
        view.primary_key = vec![0];
        let json = serde_json::to_string(&view).unwrap();
        assert!(
            !json.contains("keyed_rows"),
            "written as earlier versions wrote it"
        );
        let back: Relation = serde_json::from_str(&json).unwrap();
        assert!(!back.keyed_rows);
        view.keyed_rows = true;
        let json = serde_json::to_string(&view).unwrap();
        let back: Relation = serde_json::from_str(&json).unwrap();
        assert!(back.keyed_rows);
    }
}
