//! State descriptors: a state's name, value type and default, declared once in
//! a function and used to open the state for the current key.
//!
//! A descriptor remembers which table of the operator's store it resolved to,
//! so opening a state per record costs a comparison, not a name lookup. The
//! same name and type give the same state across restarts.

use std::cell::Cell;
use std::marker::PhantomData;
use std::sync::Arc;

use super::access::TableRef;
use super::access::{
    AggregatingStateRef, ListStateRef, MapStateRef, ReducingStateRef, ValueStateRef,
};
use super::keyed::StateKind;
use super::schema::{Declared, Evolution};
use super::ttl::{Expirable, Expiring, TtlAccess, TtlConfig};
use super::{Key, StateData};
use crate::keys::KeyMap;
use crate::runtime::codec::{self, CodecError};

/// Where a descriptor resolved: (store id, table index).
pub(crate) type Slot = Cell<Option<(u64, usize)>>;

/// What every state descriptor provides; implemented by the five kinds below.
pub trait StateDescriptor: Clone + Send + 'static {
    /// What the store keeps per key.
    type Stored: StateData;
    /// What the store keeps per key when the state has a time to live: the
    /// same, with an expiry on each value, list element or map value.
    #[doc(hidden)]
    type TtlStored: Expirable;
    /// The accessor for one key.
    type Ref<'a, K: Key>
    where
        Self: 'a;
    /// The state's name, unique within its operator.
    fn name(&self) -> &str;
    /// The state's kind.
    fn kind(&self) -> StateKind;
    /// The state's time to live, if it has one.
    fn ttl(&self) -> Option<&TtlConfig>;
    /// The name live queries reach the state by, if it is queryable.
    fn queryable_name(&self) -> Option<&str>;
    /// The state's schema, version and migrations.
    #[doc(hidden)]
    fn declared(&self) -> Declared;
    /// What a live query of one key answers: the key's value (list: its
    /// elements; map: its entries as a map; aggregating: its accumulator),
    /// encoded; `None` if the key has none.
    #[doc(hidden)]
    fn queried<K: Key>(state: Self::Ref<'_, K>) -> Result<Option<Vec<u8>>, CodecError>;
    /// What a live query of one map entry answers: the value under the
    /// encoded `user_key`, encoded (`Err(None)`: not a map state).
    #[doc(hidden)]
    fn queried_entry<K: Key>(
        _state: Self::Ref<'_, K>,
        _user_key: &[u8],
    ) -> Result<Option<Vec<u8>>, Option<CodecError>> {
        Err(None)
    }
    #[doc(hidden)]
    fn slot(&self) -> &Slot;
    #[doc(hidden)]
    fn open<'a, K: Key>(
        &'a self,
        table: TableRef<'a, K, Self::Stored>,
        key: &'a K,
        group: usize,
    ) -> Self::Ref<'a, K>;
    #[doc(hidden)]
    fn open_ttl<'a, K: Key>(
        &'a self,
        table: TableRef<'a, K, Self::TtlStored>,
        key: &'a K,
        group: usize,
        ttl: TtlAccess<'a>,
    ) -> Self::Ref<'a, K>;
    /// A stored value restored without expiries, each part given `expiry`.
    #[doc(hidden)]
    fn with_expiry(stored: Self::Stored, expiry: i64) -> Self::TtlStored;
    /// A stored value restored with expiries, without them and without the
    /// parts expired at `now` (`None`: nothing left).
    #[doc(hidden)]
    fn without_expiry(stored: Self::TtlStored, now: i64) -> Option<Self::Stored>;
}

macro_rules! descriptor_basics {
    () => {
        fn name(&self) -> &str {
            &self.name
        }
        fn slot(&self) -> &Slot {
            &self.slot
        }
        fn ttl(&self) -> Option<&TtlConfig> {
            self.ttl.as_ref()
        }
        fn queryable_name(&self) -> Option<&str> {
            self.queryable.as_deref()
        }
        fn declared(&self) -> Declared {
            self.declared_schema()
        }
    };
}

/// `queryable` for a descriptor type.
macro_rules! queryable {
    () => {
        /// The same state, readable while the job runs: a live query
        /// (`weir::query`) names the operator's uid and `name`, unique
        /// among the operator's queryable states.
        pub fn queryable(mut self, name: &str) -> Self {
            self.queryable = Some(name.into());
            self
        }
    };
}

/// The parts of one value, list or map with an expiry.
macro_rules! single_value_expiry {
    ($v:ty) => {
        fn with_expiry(stored: $v, expiry: i64) -> Expiring<$v> {
            Expiring(expiry, stored)
        }
        fn without_expiry(stored: Expiring<$v>, now: i64) -> Option<$v> {
            (!super::ttl::is_expired(stored.0, now)).then_some(stored.1)
        }
    };
}

/// `version`, `migrate_from` and `migrate_via` for a descriptor type
/// whose migrated values are `$unit`s.
macro_rules! evolves {
    ($what:literal, $unit:ty) => {
        /// The same state at schema version `version` (1 unless set):
        /// snapshots record it, and restoring one written by an older
        /// version runs the migrations declared with
        /// [`migrate_from`](Self::migrate_from) and
        /// [`migrate_via`](Self::migrate_via); one written by a newer
        /// version is refused.
        pub fn version(mut self, version: u32) -> Self {
            self.evolution = self.evolution.with_version(version);
            self
        }

        #[doc = concat!(
            "The same state, migrating ", $what, " written at version `from` (`Old`s) to the ",
            "current type with `migrate`. A restore applies it to every value of an older ",
            "snapshot; the next snapshot holds the current version. See ",
            "[`schema`](crate::state::schema)."
        )]
        pub fn migrate_from<Old>(
            mut self,
            from: u32,
            migrate: impl Fn(Old) -> $unit + Send + Sync + 'static,
        ) -> Self
        where
            Old: serde::de::DeserializeOwned + 'static,
            $unit: serde::Serialize + serde::de::DeserializeOwned + 'static,
        {
            self.evolution = self.evolution.with_migration(from, migrate, true);
            self
        }

        #[doc = concat!(
            "The same state, migrating ", $what, " written at version `from` (`Old`s) to ",
            "`New`s, the old type of the next migration: a step of a chain (v1 -> v2 with ",
            "`migrate_via`, then v2 -> v3 with `migrate_from`). The first use of the state ",
            "checks that each step produces what the next one reads."
        )]
        pub fn migrate_via<Old, New>(
            mut self,
            from: u32,
            migrate: impl Fn(Old) -> New + Send + Sync + 'static,
        ) -> Self
        where
            Old: serde::de::DeserializeOwned + 'static,
            New: serde::Serialize + serde::de::DeserializeOwned + 'static,
        {
            self.evolution = self.evolution.with_migration(from, migrate, false);
            self
        }
    };
}

/// `with_ttl` for a descriptor type.
macro_rules! with_ttl {
    () => {
        /// The same state with a time to live (see [`TtlConfig`]): entries
        /// expire, per value, list element or map entry.
        pub fn with_ttl(mut self, ttl: TtlConfig) -> Self {
            self.ttl = Some(ttl);
            // Stored differently: resolved afresh in every store.
            self.slot = Slot::default();
            self
        }
    };
}

/// One value per key.
///
/// ```
/// use weir::state::ValueStateDescriptor;
/// let seen = ValueStateDescriptor::<bool>::new("seen");
/// let total = ValueStateDescriptor::new("total").with_default(0u64);
/// # let _ = (seen, total);
/// ```
#[derive(Clone, Debug)]
pub struct ValueStateDescriptor<V> {
    name: Arc<str>,
    evolution: Evolution,
    default: Option<V>,
    slot: Slot,
    ttl: Option<TtlConfig>,
    queryable: Option<Arc<str>>,
}

impl<V> ValueStateDescriptor<V> {
    /// A value state called `name`, empty for keys that never set it.
    pub fn new(name: &str) -> Self {
        ValueStateDescriptor {
            name: name.into(),
            evolution: Evolution::default(),
            default: None,
            slot: Slot::default(),
            ttl: None,
            queryable: None,
        }
    }

    with_ttl!();
    queryable!();
    evolves!("values", V);

    /// The same state with a value for keys that never set one: its
    /// [`value`](ValueStateWithDefault::value) is that value, not an `Option`.
    pub fn with_default(mut self, default: V) -> ValueStateWithDefault<V> {
        self.default = Some(default);
        ValueStateWithDefault { inner: self }
    }
}

/// A [`ValueStateDescriptor`] with a default: reading it gives the value, or
/// the default for a key that never set one (`with_default`).
#[derive(Clone, Debug)]
pub struct ValueStateWithDefault<V> {
    pub(crate) inner: ValueStateDescriptor<V>,
}

impl<V> ValueStateWithDefault<V> {
    /// The same state with a time to live (see [`TtlConfig`]): an expired
    /// value reads as the default.
    pub fn with_ttl(mut self, ttl: TtlConfig) -> Self {
        self.inner = self.inner.with_ttl(ttl);
        self
    }

    /// The same state, readable while the job runs (see
    /// [`ValueStateDescriptor::queryable`]); a key without a value answers
    /// the default.
    pub fn queryable(mut self, name: &str) -> Self {
        self.inner = self.inner.queryable(name);
        self
    }

    /// See [`ValueStateDescriptor::version`].
    pub fn version(mut self, version: u32) -> Self {
        self.inner = self.inner.version(version);
        self
    }

    /// See [`ValueStateDescriptor::migrate_from`].
    pub fn migrate_from<Old>(
        mut self,
        from: u32,
        migrate: impl Fn(Old) -> V + Send + Sync + 'static,
    ) -> Self
    where
        Old: serde::de::DeserializeOwned + 'static,
        V: serde::Serialize + serde::de::DeserializeOwned + 'static,
    {
        self.inner = self.inner.migrate_from(from, migrate);
        self
    }

    /// See [`ValueStateDescriptor::migrate_via`].
    pub fn migrate_via<Old, New>(
        mut self,
        from: u32,
        migrate: impl Fn(Old) -> New + Send + Sync + 'static,
    ) -> Self
    where
        Old: serde::de::DeserializeOwned + 'static,
        New: serde::Serialize + serde::de::DeserializeOwned + 'static,
    {
        self.inner = self.inner.migrate_via(from, migrate);
        self
    }
}

impl<V: StateData> StateDescriptor for ValueStateWithDefault<V> {
    type Stored = V;
    type TtlStored = Expiring<V>;
    type Ref<'a, K: Key> = ValueStateRef<'a, K, V>;
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn slot(&self) -> &Slot {
        self.inner.slot()
    }
    fn ttl(&self) -> Option<&TtlConfig> {
        self.inner.ttl()
    }
    fn queryable_name(&self) -> Option<&str> {
        self.inner.queryable_name()
    }
    fn declared(&self) -> Declared {
        self.inner.declared()
    }
    fn queried<K: Key>(state: ValueStateRef<'_, K, V>) -> Result<Option<Vec<u8>>, CodecError> {
        state.value().map(|v| codec::encode(&v)).transpose()
    }
    fn kind(&self) -> StateKind {
        StateKind::Value
    }
    fn open<'a, K: Key>(
        &'a self,
        table: TableRef<'a, K, V>,
        key: &'a K,
        group: usize,
    ) -> ValueStateRef<'a, K, V> {
        self.inner.open(table, key, group)
    }
    fn open_ttl<'a, K: Key>(
        &'a self,
        table: TableRef<'a, K, Expiring<V>>,
        key: &'a K,
        group: usize,
        ttl: TtlAccess<'a>,
    ) -> ValueStateRef<'a, K, V> {
        self.inner.open_ttl(table, key, group, ttl)
    }
    single_value_expiry!(V);
}

impl<V: StateData> ValueStateDescriptor<V> {
    fn declared_schema(&self) -> Declared {
        Declared::of::<V>(self.evolution.clone())
    }
}

impl<V: StateData> StateDescriptor for ValueStateDescriptor<V> {
    type Stored = V;
    type TtlStored = Expiring<V>;
    type Ref<'a, K: Key> = ValueStateRef<'a, K, V>;
    descriptor_basics!();
    fn queried<K: Key>(state: ValueStateRef<'_, K, V>) -> Result<Option<Vec<u8>>, CodecError> {
        state.value().map(|v| codec::encode(&v)).transpose()
    }
    fn kind(&self) -> StateKind {
        StateKind::Value
    }
    fn open<'a, K: Key>(
        &'a self,
        table: TableRef<'a, K, V>,
        key: &'a K,
        group: usize,
    ) -> ValueStateRef<'a, K, V> {
        ValueStateRef::new(table, key, group, self.default.as_ref())
    }
    fn open_ttl<'a, K: Key>(
        &'a self,
        table: TableRef<'a, K, Expiring<V>>,
        key: &'a K,
        group: usize,
        ttl: TtlAccess<'a>,
    ) -> ValueStateRef<'a, K, V> {
        ValueStateRef::with_ttl(table, key, group, self.default.as_ref(), ttl)
    }
    single_value_expiry!(V);
}

/// A list of values per key.
#[derive(Clone, Debug)]
pub struct ListStateDescriptor<V> {
    name: Arc<str>,
    evolution: Evolution,
    slot: Slot,
    ttl: Option<TtlConfig>,
    queryable: Option<Arc<str>>,
    _value: PhantomData<fn() -> V>,
}

impl<V> ListStateDescriptor<V> {
    /// A list state called `name`.
    pub fn new(name: &str) -> Self {
        ListStateDescriptor {
            name: name.into(),
            evolution: Evolution::default(),
            slot: Slot::default(),
            ttl: None,
            queryable: None,
            _value: PhantomData,
        }
    }

    with_ttl!();
    queryable!();
    evolves!("elements", V);
}

impl<V: StateData> ListStateDescriptor<V> {
    fn declared_schema(&self) -> Declared {
        Declared::of::<V>(self.evolution.clone())
    }
}

impl<V: StateData> StateDescriptor for ListStateDescriptor<V> {
    type Stored = Vec<V>;
    type TtlStored = Vec<Expiring<V>>;
    type Ref<'a, K: Key> = ListStateRef<'a, K, V>;
    descriptor_basics!();
    fn queried<K: Key>(state: ListStateRef<'_, K, V>) -> Result<Option<Vec<u8>>, CodecError> {
        let values = state.get();
        (!values.is_empty())
            .then(|| codec::encode(&values))
            .transpose()
    }
    fn kind(&self) -> StateKind {
        StateKind::List
    }
    fn open<'a, K: Key>(
        &'a self,
        table: TableRef<'a, K, Vec<V>>,
        key: &'a K,
        group: usize,
    ) -> ListStateRef<'a, K, V> {
        ListStateRef::new(table, key, group)
    }
    fn open_ttl<'a, K: Key>(
        &'a self,
        table: TableRef<'a, K, Vec<Expiring<V>>>,
        key: &'a K,
        group: usize,
        ttl: TtlAccess<'a>,
    ) -> ListStateRef<'a, K, V> {
        ListStateRef::with_ttl(table, key, group, ttl)
    }
    fn with_expiry(stored: Vec<V>, expiry: i64) -> Vec<Expiring<V>> {
        stored.into_iter().map(|v| Expiring(expiry, v)).collect()
    }
    fn without_expiry(stored: Vec<Expiring<V>>, now: i64) -> Option<Vec<V>> {
        let live: Vec<V> = stored
            .into_iter()
            .filter(|e| !super::ttl::is_expired(e.0, now))
            .map(|e| e.1)
            .collect();
        (!live.is_empty()).then_some(live)
    }
}

/// A map per key.
#[derive(Clone, Debug)]
pub struct MapStateDescriptor<UK, UV> {
    name: Arc<str>,
    evolution: Evolution,
    slot: Slot,
    ttl: Option<TtlConfig>,
    queryable: Option<Arc<str>>,
    _types: PhantomData<fn() -> (UK, UV)>,
}

impl<UK, UV> MapStateDescriptor<UK, UV> {
    /// A map state called `name`.
    pub fn new(name: &str) -> Self {
        MapStateDescriptor {
            name: name.into(),
            evolution: Evolution::default(),
            slot: Slot::default(),
            ttl: None,
            queryable: None,
            _types: PhantomData,
        }
    }

    with_ttl!();
    queryable!();
    evolves!("values (not keys)", UV);
}

impl<UK: Key, UV: StateData> MapStateDescriptor<UK, UV> {
    fn declared_schema(&self) -> Declared {
        Declared::of::<UV>(self.evolution.clone()).with_user_key::<UK>()
    }
}

impl<UK: Key, UV: StateData> StateDescriptor for MapStateDescriptor<UK, UV> {
    type Stored = KeyMap<UK, UV>;
    type TtlStored = KeyMap<UK, Expiring<UV>>;
    type Ref<'a, K: Key> = MapStateRef<'a, K, UK, UV>;
    descriptor_basics!();
    fn queried<K: Key>(state: MapStateRef<'_, K, UK, UV>) -> Result<Option<Vec<u8>>, CodecError> {
        let entries: KeyMap<UK, UV> = state.entries().into_iter().collect();
        (!entries.is_empty())
            .then(|| codec::encode(&entries))
            .transpose()
    }
    fn queried_entry<K: Key>(
        state: MapStateRef<'_, K, UK, UV>,
        user_key: &[u8],
    ) -> Result<Option<Vec<u8>>, Option<CodecError>> {
        let user_key: UK = codec::decode(user_key)?;
        Ok(state
            .get(&user_key)
            .map(|v| codec::encode(&v))
            .transpose()?)
    }
    fn kind(&self) -> StateKind {
        StateKind::Map
    }
    fn open<'a, K: Key>(
        &'a self,
        table: TableRef<'a, K, KeyMap<UK, UV>>,
        key: &'a K,
        group: usize,
    ) -> MapStateRef<'a, K, UK, UV> {
        MapStateRef::new(table, key, group)
    }
    fn open_ttl<'a, K: Key>(
        &'a self,
        table: TableRef<'a, K, KeyMap<UK, Expiring<UV>>>,
        key: &'a K,
        group: usize,
        ttl: TtlAccess<'a>,
    ) -> MapStateRef<'a, K, UK, UV> {
        MapStateRef::with_ttl(table, key, group, ttl)
    }
    fn with_expiry(stored: KeyMap<UK, UV>, expiry: i64) -> KeyMap<UK, Expiring<UV>> {
        stored
            .into_iter()
            .map(|(k, v)| (k, Expiring(expiry, v)))
            .collect()
    }
    fn without_expiry(stored: KeyMap<UK, Expiring<UV>>, now: i64) -> Option<KeyMap<UK, UV>> {
        let live: KeyMap<UK, UV> = stored
            .into_iter()
            .filter(|(_, e)| !super::ttl::is_expired(e.0, now))
            .map(|(k, e)| (k, e.1))
            .collect();
        (!live.is_empty()).then_some(live)
    }
}

type ReduceFn<V> = Arc<dyn Fn(V, V) -> V + Send + Sync>;

/// One value per key, folded from everything added with a reduce function.
#[derive(Clone)]
pub struct ReducingStateDescriptor<V> {
    name: Arc<str>,
    evolution: Evolution,
    slot: Slot,
    ttl: Option<TtlConfig>,
    queryable: Option<Arc<str>>,
    reduce: ReduceFn<V>,
}

impl<V> ReducingStateDescriptor<V> {
    /// A reducing state called `name` that combines values with `reduce`.
    pub fn new(name: &str, reduce: impl Fn(V, V) -> V + Send + Sync + 'static) -> Self {
        ReducingStateDescriptor {
            name: name.into(),
            evolution: Evolution::default(),
            slot: Slot::default(),
            ttl: None,
            queryable: None,
            reduce: Arc::new(reduce),
        }
    }

    with_ttl!();
    queryable!();
    evolves!("values", V);
}

impl<V: StateData> ReducingStateDescriptor<V> {
    fn declared_schema(&self) -> Declared {
        Declared::of::<V>(self.evolution.clone())
    }
}

impl<V: StateData> StateDescriptor for ReducingStateDescriptor<V> {
    type Stored = V;
    type TtlStored = Expiring<V>;
    type Ref<'a, K: Key> = ReducingStateRef<'a, K, V>;
    descriptor_basics!();
    fn queried<K: Key>(state: ReducingStateRef<'_, K, V>) -> Result<Option<Vec<u8>>, CodecError> {
        state.get().map(|v| codec::encode(&v)).transpose()
    }
    fn kind(&self) -> StateKind {
        StateKind::Reducing
    }
    fn open<'a, K: Key>(
        &'a self,
        table: TableRef<'a, K, V>,
        key: &'a K,
        group: usize,
    ) -> ReducingStateRef<'a, K, V> {
        ReducingStateRef::new(table, key, group, &*self.reduce)
    }
    fn open_ttl<'a, K: Key>(
        &'a self,
        table: TableRef<'a, K, Expiring<V>>,
        key: &'a K,
        group: usize,
        ttl: TtlAccess<'a>,
    ) -> ReducingStateRef<'a, K, V> {
        ReducingStateRef::with_ttl(table, key, group, &*self.reduce, ttl)
    }
    single_value_expiry!(V);
}

/// Folds input values into an accumulator and reads a result from it (as
/// Flink's `AggregateFunction`).
///
/// ```
/// use weir::state::AggregateFunction;
/// /// The average of the values added.
/// #[derive(Clone)]
/// struct Average;
/// impl AggregateFunction for Average {
///     type In = f64;
///     type Acc = (f64, u64);
///     type Out = f64;
///     fn create_accumulator(&self) -> (f64, u64) { (0.0, 0) }
///     fn add(&self, value: f64, acc: &mut (f64, u64)) { acc.0 += value; acc.1 += 1; }
///     fn get_result(&self, acc: &(f64, u64)) -> f64 { acc.0 / acc.1 as f64 }
///     fn merge(&self, acc: &mut (f64, u64), other: (f64, u64)) { acc.0 += other.0; acc.1 += other.1; }
/// }
/// ```
pub trait AggregateFunction: Send + Sync + 'static {
    /// What is added.
    type In;
    /// What is stored.
    type Acc: StateData;
    /// What is read.
    type Out;
    /// A fresh, empty accumulator.
    fn create_accumulator(&self) -> Self::Acc;
    /// Adds one value to the accumulator.
    fn add(&self, value: Self::In, acc: &mut Self::Acc);
    /// The result for an accumulator.
    fn get_result(&self, acc: &Self::Acc) -> Self::Out;
    /// Merges `other` into `acc` (session windows merge their accumulators).
    fn merge(&self, acc: &mut Self::Acc, other: Self::Acc);
}

/// One accumulator per key, fed by an [`AggregateFunction`].
pub struct AggregatingStateDescriptor<A> {
    name: Arc<str>,
    evolution: Evolution,
    slot: Slot,
    ttl: Option<TtlConfig>,
    queryable: Option<Arc<str>>,
    function: Arc<A>,
}

impl<A> Clone for AggregatingStateDescriptor<A> {
    fn clone(&self) -> Self {
        AggregatingStateDescriptor {
            name: self.name.clone(),
            evolution: self.evolution.clone(),
            slot: self.slot.clone(),
            ttl: self.ttl.clone(),
            queryable: self.queryable.clone(),
            function: self.function.clone(),
        }
    }
}

impl<A: AggregateFunction> AggregatingStateDescriptor<A> {
    /// An aggregating state called `name` driven by `function`.
    pub fn new(name: &str, function: A) -> Self {
        AggregatingStateDescriptor {
            name: name.into(),
            evolution: Evolution::default(),
            slot: Slot::default(),
            ttl: None,
            queryable: None,
            function: Arc::new(function),
        }
    }

    with_ttl!();
    queryable!();
    evolves!("accumulators", A::Acc);
}

impl<A: AggregateFunction> AggregatingStateDescriptor<A> {
    fn declared_schema(&self) -> Declared {
        Declared::of::<A::Acc>(self.evolution.clone())
    }
}

impl<A: AggregateFunction> StateDescriptor for AggregatingStateDescriptor<A> {
    type Stored = A::Acc;
    type TtlStored = Expiring<A::Acc>;
    type Ref<'a, K: Key> = AggregatingStateRef<'a, K, A>;
    descriptor_basics!();
    fn queried<K: Key>(
        state: AggregatingStateRef<'_, K, A>,
    ) -> Result<Option<Vec<u8>>, CodecError> {
        state
            .accumulator()
            .map(|acc| codec::encode(&acc))
            .transpose()
    }
    fn kind(&self) -> StateKind {
        StateKind::Aggregating
    }
    fn open<'a, K: Key>(
        &'a self,
        table: TableRef<'a, K, A::Acc>,
        key: &'a K,
        group: usize,
    ) -> AggregatingStateRef<'a, K, A> {
        AggregatingStateRef::new(table, key, group, &*self.function)
    }
    fn open_ttl<'a, K: Key>(
        &'a self,
        table: TableRef<'a, K, Expiring<A::Acc>>,
        key: &'a K,
        group: usize,
        ttl: TtlAccess<'a>,
    ) -> AggregatingStateRef<'a, K, A> {
        AggregatingStateRef::with_ttl(table, key, group, &*self.function, ttl)
    }
    single_value_expiry!(A::Acc);
}
