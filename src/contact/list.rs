//! A list field as a request sent it, kept only up to the number of entries a contact may
//! have: a decoder's memory then follows the limit, not the body (a 16 MiB body of `{}`
//! entries would otherwise be millions of structs), while the true count still reaches
//! validation, which fails the contact with it (`too.many.values`).

use serde::de::{Deserialize, Deserializer, SeqAccess, Visitor};
use std::fmt;
use std::marker::PhantomData;

/// Most entries in one list (emails, phone numbers, SIP addresses, IMs, groups, signing
/// group users).
pub const MAX_LIST_ENTRIES: usize = 50;

/// A list's first [`MAX_LIST_ENTRIES`] entries and how many it had in all. Only a list
/// within the limit ([`BoundedList::within_limit`]) gives its entries out, so a list that
/// lost entries can never pass for a whole one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundedList<T> {
    items: Vec<T>,
    total: usize,
}

impl<T> BoundedList<T> {
    /// Adds an entry: kept while the list is within the limit, else only counted.
    pub fn push(&mut self, item: T) {
        if self.items.len() < MAX_LIST_ENTRIES {
            self.items.push(item);
        }
        self.total += 1;
    }

    /// How many entries the list had, kept or not.
    pub fn total(&self) -> usize {
        self.total
    }

    /// The entries kept: every entry when the list is within the limit, else the first
    /// [`MAX_LIST_ENTRIES`].
    pub fn kept(&self) -> &[T] {
        &self.items
    }

    /// Every entry, or the true count when the list has more than [`MAX_LIST_ENTRIES`].
    pub fn within_limit(self) -> Result<Vec<T>, usize> {
        if self.total > MAX_LIST_ENTRIES {
            Err(self.total)
        } else {
            Ok(self.items)
        }
    }

    /// The same list with each kept entry mapped; the count is kept too.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> BoundedList<U> {
        BoundedList {
            items: self.items.into_iter().map(f).collect(),
            total: self.total,
        }
    }

    /// [`BoundedList::map`] with a fallible `f`, given each entry's index; the first error
    /// is returned.
    pub fn try_map<U, E>(
        self,
        mut f: impl FnMut(usize, T) -> Result<U, E>,
    ) -> Result<BoundedList<U>, E> {
        let items = self
            .items
            .into_iter()
            .enumerate()
            .map(|(i, item)| f(i, item))
            .collect::<Result<Vec<_>, E>>()?;
        Ok(BoundedList {
            items,
            total: self.total,
        })
    }
}

impl<T> Default for BoundedList<T> {
    fn default() -> Self {
        Self {
            items: Vec::new(),
            total: 0,
        }
    }
}

impl<T> FromIterator<T> for BoundedList<T> {
    /// Reads the whole iterator (each entry beyond the limit is made, counted and dropped).
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        let mut list = Self::default();
        iter.into_iter().for_each(|item| list.push(item));
        list.items.shrink_to_fit();
        list
    }
}

impl<T> From<Vec<T>> for BoundedList<T> {
    fn from(items: Vec<T>) -> Self {
        items.into_iter().collect()
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for BoundedList<T> {
    /// A sequence of `T`. Every entry is deserialised, so one of the wrong type fails the
    /// list wherever it is, as in a `Vec<T>`; those beyond the limit are dropped at once.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Entries<T>(PhantomData<T>);

        impl<'de, T: Deserialize<'de>> Visitor<'de> for Entries<T> {
            type Value = BoundedList<T>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a sequence")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut list = BoundedList::default();
                while let Some(item) = seq.next_element()? {
                    list.push(item);
                }
                list.items.shrink_to_fit();
                Ok(list)
            }
        }

        deserializer.deserialize_seq(Entries(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_limit_and_counts_the_rest() {
        let list: BoundedList<u32> = (0..200_000).collect();
        assert_eq!(list.total(), 200_000);
        assert_eq!(list.kept().len(), MAX_LIST_ENTRIES);
        assert_eq!(list.within_limit(), Err(200_000));

        let list = BoundedList::from(vec![1, 2, 3]);
        assert_eq!(list.total(), 3);
        assert_eq!(list.within_limit(), Ok(vec![1, 2, 3]));
    }

    #[test]
    fn deserialises_like_a_vec_but_keeps_only_the_limit() {
        let body = format!("[{}]", vec!["\"a\""; 1_000].join(","));
        let list: BoundedList<String> = serde_json::from_str(&body).unwrap();
        assert_eq!((list.total(), list.kept().len()), (1_000, MAX_LIST_ENTRIES));

        let exact: BoundedList<String> = serde_json::from_str(r#"["a","b"]"#).unwrap();
        assert_eq!(
            exact.within_limit(),
            Ok(vec!["a".to_owned(), "b".to_owned()])
        );

        // An entry of the wrong type fails the list, even beyond the limit.
        let late = format!("[{},1]", vec!["\"a\""; 100].join(","));
        assert!(serde_json::from_str::<BoundedList<String>>(&late).is_err());
        assert!(serde_json::from_str::<BoundedList<String>>("{}").is_err());
    }
}
