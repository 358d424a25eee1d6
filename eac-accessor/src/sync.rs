//! Locks that outlive a panic: one way to take them, used everywhere in the crate.
//!
//! A panic while a lock is held (in a user's callback, a hook, a test) poisons it. Every
//! value eac keeps behind a lock is whole between statements — a status, a history, the
//! writer's last read — so the next holder takes it as it is rather than panicking too
//! and taking the service down with it.

use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Locks `m`, taking the value as it is when an earlier holder panicked.
pub(crate) fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Read-locks `rw`, taking the value as it is when an earlier writer panicked.
pub(crate) fn read<T: ?Sized>(rw: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    rw.read().unwrap_or_else(|p| p.into_inner())
}

/// Write-locks `rw`, taking the value as it is when an earlier holder panicked.
pub(crate) fn write<T: ?Sized>(rw: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    rw.write().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_poisoned_by_a_panic_is_taken_as_it_is() {
        let m = Mutex::new(1);
        let rw = RwLock::new(1);
        let _ = std::panic::catch_unwind(|| {
            let (mut a, mut b) = (m.lock().unwrap(), rw.write().unwrap());
            (*a, *b) = (2, 2);
            panic!("poison both");
        });
        assert!(m.is_poisoned() && rw.is_poisoned());
        assert_eq!(*lock(&m), 2);
        assert_eq!(*read(&rw), 2);
        *write(&rw) = 3;
        assert_eq!(*read(&rw), 3);
    }
}
