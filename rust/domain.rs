// SPDX-License-Identifier: GPL-2.0

//! Domains (`domain_id=`): mounts of one domain share one fscache volume, `erofs,<domain_id>`,
//! and one cookie per blob name, as in-tree erofs does (`erofs_fscache_register_domain()` and
//! `erofs_domain_register_cookie()` of fs/erofs/fscache.c):
//!
//! * the first mount of a domain acquires the volume; later mounts take a reference to it, and the
//!   last one to go relinquishes it;
//! * a blob used by several mounts of a domain (a data blob shared by two images, say) is one
//!   cookie with a reference count: fscache would refuse a second cookie with the same key in the
//!   volume;
//! * the primary blob (`fsid=`) of a mount must not exist in the domain yet: a second mount of the
//!   same fsid fails with `EEXIST`, as in C.
//!
//! Unlike C, the page cache of a mount's metadata blob stays on the mount's own super block: only
//! that mount reads metadata through it (its fsid is unique in the domain), so nothing needs the
//! pseudo mount C keeps for it.
//!
//! Both tables live behind one mutex (`erofs_rs_domain_mutex` in `rust/shim.c`). Objects are
//! boxed, so handles can point to them while the tables grow; their reference counts sit next to
//! the boxes, in the tables, and change only under the mutex.

use crate::fscache::{Cookie, Volume};
use crate::super_::BStr;
use crate::{erofs_err, ffi};
use core::cell::UnsafeCell;
use core::marker::PhantomData;
use core::mem::MaybeUninit;
use core::ops::Deref;
use core::ptr::NonNull;
use kernel::alloc::{flags::GFP_KERNEL, KBox, KVec};
use kernel::error::{code::*, Result};
use kernel::str::CStr;

/// A domain: its name and its volume.
struct DomainEntry {
    id: KVec<u8>,
    volume: Volume,
}

/// A cookie shared in a domain. The domain reference keeps the volume until the cookie is
/// relinquished (see `SharedCookie`'s drop).
struct SharedEntry {
    name: KVec<u8>,
    cookie: Cookie,
    domain: DomainRef,
}

/// A table entry: a boxed object and the number of handles to it.
struct Slot<T> {
    entry: KBox<T>,
    refs: usize,
}

/// The two tables. Free slots (`None`) are reused; the tables never shrink, which bounds them by
/// the largest number of domains and shared blobs ever in use at once.
struct Registry {
    domains: KVec<Option<Slot<DomainEntry>>>,
    cookies: KVec<Option<Slot<SharedEntry>>>,
}

/// The registry, reachable only through a `Guard`.
struct RegistryCell(UnsafeCell<Registry>);

// SAFETY: the registry is only accessed through `Guard::registry`, under the domain mutex.
unsafe impl Sync for RegistryCell {}

static REGISTRY: RegistryCell =
    RegistryCell(UnsafeCell::new(Registry { domains: KVec::new(), cookies: KVec::new() }));

/// Holds the domain mutex; unlocks it on drop.
///
/// # Invariants
///
/// The current task holds `erofs_rs_domain_mutex` for as long as the guard lives. Not `Send`: a
/// mutex is released by the task that took it.
struct Guard(PhantomData<*mut ()>);

impl Guard {
    fn lock() -> Self {
        // SAFETY: a plain mutex, initialised statically; we may sleep here (mount/umount paths).
        unsafe { ffi::erofs_rs_domain_lock() };
        // INVARIANT: just locked.
        Guard(PhantomData)
    }

    fn registry(&mut self) -> &mut Registry {
        // SAFETY: we hold the mutex (type invariant), which serialises every access to the
        // registry, and the `&mut self` borrow keeps this one exclusive within the task.
        unsafe { &mut *REGISTRY.0.get() }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        // SAFETY: we hold the mutex (type invariant).
        unsafe { ffi::erofs_rs_domain_unlock() };
    }
}

/// Returns a free slot of `table`, adding one if needed. Fails only for lack of memory, before
/// anything is built, so that callers never drop a new object with the mutex held.
fn free_slot<T>(table: &mut KVec<Option<Slot<T>>>) -> Result<&mut Option<Slot<T>>> {
    let i = match table.iter().position(|s| s.is_none()) {
        Some(i) => i,
        None => {
            table.push(None, GFP_KERNEL)?;
            table.len() - 1
        }
    };
    table.get_mut(i).ok_or(ENOMEM)
}

/// Moves `value` into the preallocated `boxed`, stores it in the free `slot` with one reference and
/// returns a pointer to the boxed object.
fn fill<T>(slot: &mut Option<Slot<T>>, boxed: KBox<MaybeUninit<T>>, value: T) -> NonNull<T> {
    let entry = KBox::write(boxed, value);
    let ptr = NonNull::from(&*entry);
    *slot = Some(Slot { entry, refs: 1 });
    ptr
}

/// Drops one reference to the object at `ptr` in `table`; returns the object if that was the last
/// one, for the caller to drop once the mutex is released.
fn put<T>(table: &mut KVec<Option<Slot<T>>>, ptr: NonNull<T>) -> Option<KBox<T>> {
    let slot = table.iter_mut().find(|s| {
        s.as_ref().is_some_and(|s| core::ptr::eq(&*s.entry, ptr.as_ptr()))
    })?;
    let s = slot.as_mut()?;
    s.refs = s.refs.saturating_sub(1);
    if s.refs == 0 {
        slot.take().map(|s| s.entry)
    } else {
        None
    }
}

/// Frees the registry's tables at module exit.
///
/// The tables are statics, whose destructors never run: without this, the memory of the last
/// tables (allocated by mounts, kept for reuse) leaks when the module is unloaded, and kmemleak
/// reports it. By then no mount exists (a mounted file system holds a reference to the module),
/// so every slot is free; a slot still in use would be a bug, and its object is leaked rather
/// than freed under a handle that may still point to it.
pub(crate) fn release_tables() {
    let mut guard = Guard::lock();
    let reg = guard.registry();
    let domains = core::mem::replace(&mut reg.domains, KVec::new());
    let cookies = core::mem::replace(&mut reg.cookies, KVec::new());
    drop(guard);
    let busy = domains.iter().filter(|s| s.is_some()).count()
        + cookies.iter().filter(|s| s.is_some()).count();
    if busy != 0 {
        erofs_err!("{} domain objects still in use at module exit: leaked", busy);
        for slot in domains.into_iter().flatten() {
            core::mem::forget(slot);
        }
        for slot in cookies.into_iter().flatten() {
            core::mem::forget(slot);
        }
    }
}

/// A reference to a domain, and so to its volume.
///
/// # Invariants
///
/// `self.0` points to the `DomainEntry` of a slot of the registry whose count includes this handle;
/// the entry is neither moved nor freed, and its fields are never written, while the count is
/// non-zero.
pub(crate) struct DomainRef(NonNull<DomainEntry>);

// SAFETY: the entry is only read through the handle (type invariant), and its volume is `Sync`;
// the count is only changed under the mutex.
unsafe impl Send for DomainRef {}
// SAFETY: as above.
unsafe impl Sync for DomainRef {}

impl DomainRef {
    /// Joins the domain `id`: takes a reference to it, or creates it by acquiring the volume
    /// `erofs,<id>` (`volume_name`, NUL-terminated).
    pub(crate) fn get(id: &[u8], volume_name: &CStr) -> Result<Self> {
        let mut guard = Guard::lock();
        let reg = guard.registry();
        for s in reg.domains.iter_mut().flatten() {
            if s.entry.id.as_slice() == id {
                s.refs = s.refs.checked_add(1).ok_or(ENOSPC)?;
                // INVARIANT: the count includes the new handle.
                return Ok(DomainRef(NonNull::from(&*s.entry)));
            }
        }
        let mut name = KVec::with_capacity(id.len(), GFP_KERNEL)?;
        name.extend_from_slice(id, GFP_KERNEL)?;
        let boxed = KBox::new_uninit(GFP_KERNEL)?;
        let slot = free_slot(&mut reg.domains)?;
        let volume = Volume::acquire(volume_name).inspect_err(|e| {
            erofs_err!(
                "failed to register volume for {}: {:?} (is a cachefiles daemon bound in ondemand mode?)",
                BStr(volume_name.as_bytes()),
                e
            );
        })?;
        // INVARIANT: a new slot with one reference, this handle's.
        Ok(DomainRef(fill(slot, boxed, DomainEntry { id: name, volume })))
    }

    fn entry(&self) -> &DomainEntry {
        // SAFETY: the entry lives, unchanged, while we hold a reference (type invariant).
        unsafe { self.0.as_ref() }
    }

    /// The domain's volume.
    pub(crate) fn volume(&self) -> &Volume {
        &self.entry().volume
    }

    /// The domain's name.
    pub(crate) fn id(&self) -> &[u8] {
        &self.entry().id
    }

    fn clone_ref(&self) -> Result<Self> {
        let mut guard = Guard::lock();
        let reg = guard.registry();
        for s in reg.domains.iter_mut().flatten() {
            if core::ptr::eq(&*s.entry, self.0.as_ptr()) {
                s.refs = s.refs.checked_add(1).ok_or(ENOSPC)?;
                // INVARIANT: the count includes the new handle.
                return Ok(DomainRef(self.0));
            }
        }
        // Unreachable while `self` holds a reference.
        Err(EINVAL)
    }

    /// Registers the blob `name` in the domain, like `erofs_domain_register_cookie()`: takes a
    /// reference to its cookie if a mount of the domain already uses it, else acquires it. With
    /// `exclusive` (a mount's primary blob) an existing cookie is an error: `EEXIST`.
    pub(crate) fn cookie(&self, name: &[u8], exclusive: bool) -> Result<SharedCookie> {
        // Everything that can fail to allocate is prepared before the mutex is taken, and the
        // domain reference is declared before the guard: on an early return the guard drops
        // first, and dropping a `DomainRef` takes the mutex.
        let domain = self.clone_ref()?;
        let mut key = KVec::with_capacity(name.len(), GFP_KERNEL)?;
        key.extend_from_slice(name, GFP_KERNEL)?;
        let boxed = KBox::new_uninit(GFP_KERNEL)?;
        let mut guard = Guard::lock();
        let reg = guard.registry();
        for s in reg.cookies.iter_mut().flatten() {
            if !core::ptr::eq(s.entry.domain.0.as_ptr(), self.0.as_ptr())
                || s.entry.name.as_slice() != name
            {
                continue;
            }
            if exclusive {
                erofs_err!("{} already exists in domain {}", BStr(name), BStr(self.id()));
                return Err(EEXIST);
            }
            s.refs = s.refs.checked_add(1).ok_or(ENOSPC)?;
            // INVARIANT: the count includes the new handle.
            return Ok(SharedCookie(NonNull::from(&*s.entry)));
        }
        let slot = free_slot(&mut reg.cookies)?;
        let cookie = Cookie::acquire(self.volume(), name).inspect_err(|_| {
            erofs_err!("failed to get cookie for {}", BStr(name));
        })?;
        // INVARIANT: a new slot with one reference, this handle's.
        Ok(SharedCookie(fill(slot, boxed, SharedEntry { name: key, cookie, domain })))
    }
}

impl Drop for DomainRef {
    fn drop(&mut self) {
        let mut guard = Guard::lock();
        // The last reference relinquishes the volume with the mutex held, as C does: a mount
        // of the domain that comes next waits for the relinquished volume instead of colliding
        // with one not yet relinquished (EBUSY).
        drop(put(&mut guard.registry().domains, self.0));
    }
}

/// A reference to a cookie shared in a domain.
///
/// # Invariants
///
/// `self.0` points to the `SharedEntry` of a slot of the registry whose count includes this
/// handle; the entry is neither moved nor freed, and its fields are never written, while the count
/// is non-zero.
pub(crate) struct SharedCookie(NonNull<SharedEntry>);

// SAFETY: the entry is only read through the handle (type invariant), and cookies are `Sync`;
// the count is only changed under the mutex.
unsafe impl Send for SharedCookie {}
// SAFETY: as above.
unsafe impl Sync for SharedCookie {}

impl Deref for SharedCookie {
    type Target = Cookie;

    fn deref(&self) -> &Cookie {
        // SAFETY: the entry lives, unchanged, while we hold a reference (type invariant).
        unsafe { &self.0.as_ref().cookie }
    }
}

impl Drop for SharedCookie {
    fn drop(&mut self) {
        let mut guard = Guard::lock();
        let Some(last) = put(&mut guard.registry().cookies, self.0) else { return };
        let SharedEntry { name, cookie, domain } = KBox::into_inner(last);
        // The cookie is relinquished with the mutex held (see `DomainRef`'s drop); the domain
        // reference, whose drop takes the mutex, only after it is released.
        drop(cookie);
        drop(name);
        drop(guard);
        drop(domain);
    }
}

/// The volume of a mount: its own (`erofs,<fsid>`) or its domain's.
pub(crate) enum VolumeRef {
    Own(Volume),
    Domain(DomainRef),
}

impl VolumeRef {
    /// Acquires the cookie of blob `name` for this mount: a cookie of its own, or one shared in
    /// its domain (`exclusive`: see [`DomainRef::cookie`]).
    pub(crate) fn cookie(&self, name: &[u8], exclusive: bool) -> Result<CookieRef> {
        match self {
            VolumeRef::Own(v) => {
                let c = Cookie::acquire(v, name).inspect_err(|_| {
                    erofs_err!("failed to get cookie for {}", BStr(name));
                })?;
                Ok(CookieRef::Own(KBox::new(c, GFP_KERNEL)?))
            }
            VolumeRef::Domain(d) => Ok(CookieRef::Shared(d.cookie(name, exclusive)?)),
        }
    }
}

/// A mount's handle to a blob's cookie. Either way the cookie has a stable address for as long
/// as the handle lives (blob page caches keep a pointer to it in `i_private`).
pub(crate) enum CookieRef {
    Own(KBox<Cookie>),
    Shared(SharedCookie),
}

impl Deref for CookieRef {
    type Target = Cookie;

    fn deref(&self) -> &Cookie {
        match self {
            CookieRef::Own(c) => c,
            CookieRef::Shared(c) => c,
        }
    }
}
