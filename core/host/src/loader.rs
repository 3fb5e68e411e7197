//! Finding, opening and checking module libraries. No module code runs here: only the static
//! declaration is read, and every check passes before the host calls `init`.

use evi_abi::{
    EviModuleDecl, EviStr, EviTransport, DECL_SIZES, EVI_ABI_MAJOR, EVI_ABI_MINOR, EVI_MAGIC,
    EVI_MODULE_SYMBOL, EVI_PARAM_BOOL, EVI_PARAM_INT, EVI_PARAM_REPEATABLE, EVI_TRANSPORT_SIZE_1_0,
    EVI_VALUE_INT, EVI_VALUE_STR, LAYOUT_HASHES,
};
use std::fmt;
use std::path::{Path, PathBuf};

/// A loader error: one sentence naming the file, the module and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError(pub String);

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LoadError {}

/// Resolve `loadmodule "NAME"` against `mpath`: an absolute or `./`-relative path loads directly;
/// otherwise each mpath entry is tried with `NAME.so`, `libNAME.so` and `NAME/NAME.so`.
pub fn find_module(spec: &str, mpath: &[PathBuf]) -> Result<PathBuf, LoadError> {
    if spec.contains('/') {
        let p = PathBuf::from(spec);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(LoadError(format!("module file {spec} not found")))
        };
    }
    let stem = spec.strip_suffix(".so").unwrap_or(spec);
    let mut tried = Vec::new();
    for dir in mpath {
        for cand in [
            format!("{stem}.so"),
            format!("lib{stem}.so"),
            format!("{stem}/{stem}.so"),
        ] {
            let p = dir.join(&cand);
            if p.is_file() {
                return Ok(p);
            }
            tried.push(p.display().to_string());
        }
    }
    Err(LoadError(format!(
        "module {stem} not found; tried {} (set mpath, or build it with cargo build)",
        tried.join(", ")
    )))
}

/// The module name a file must declare: its stem without a `lib` prefix.
pub fn expected_name(path: &Path) -> String {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = stem.split('.').next().unwrap_or_default().to_string();
    stem.strip_prefix("lib").map(str::to_string).unwrap_or(stem)
}

/// An opened, checked module library. Dropping it unloads the library.
pub struct Library {
    // Field order matters: `decl` points into `lib`.
    decl: *const EviModuleDecl,
    lib: libloading::Library,
    /// The file actually loaded.
    pub path: PathBuf,
    /// The file the config named (differs from `path` for a development copy).
    pub origin: PathBuf,
    /// Size and modification time of `origin` when it was copied (development copies only).
    pub origin_stamp: Option<(u64, std::time::SystemTime)>,
    pub name: String,
}

// SAFETY: the declaration is immutable static data of the loaded library.
unsafe impl Send for Library {}
unsafe impl Sync for Library {}

impl Library {
    /// dlopen → symbol → magic → major → minor → size/layout → name. Runs no module code
    /// (beyond the dynamic loader's own initialisers).
    pub fn open(path: &Path) -> Result<Library, LoadError> {
        let file = path.display().to_string();
        // SAFETY: loading a library runs its ELF initialisers; evid modules have none of their own.
        let lib = unsafe { libloading::Library::new(path) }
            .map_err(|e| LoadError(format!("{file}: cannot load: {e}")))?;
        // SAFETY: we only read the symbol's address; its type is checked field by field below.
        let decl: *const EviModuleDecl = unsafe {
            lib.get::<*const EviModuleDecl>(EVI_MODULE_SYMBOL.as_bytes())
                .map(|s| *s)
                .map_err(|_| {
                    LoadError(format!(
                        "{file}: not an evid module (no `{EVI_MODULE_SYMBOL}` symbol; write it with evi_sdk::export_module!)"
                    ))
                })?
        };
        if decl.is_null() {
            return Err(LoadError(format!(
                "{file}: `{EVI_MODULE_SYMBOL}` symbol is null"
            )));
        }
        // SAFETY: the header is frozen across ABI versions, so reading it is always valid.
        let h = unsafe { &(*decl).header.0 };
        if h.magic != EVI_MAGIC {
            return Err(LoadError(format!(
                "{file}: bad magic {:#018x} in `{EVI_MODULE_SYMBOL}` (expected {EVI_MAGIC:#018x}); not an evid module",
                h.magic
            )));
        }
        let expected = expected_name(path);
        if h.abi_major != EVI_ABI_MAJOR {
            return Err(LoadError(format!(
                "{file}: module {expected} was built for ABI {}.{}, this evid speaks ABI {EVI_ABI_MAJOR}.{EVI_ABI_MINOR}; rebuild the module against this evid's evi-sdk",
                h.abi_major, h.abi_minor
            )));
        }
        if h.abi_minor > EVI_ABI_MINOR {
            return Err(LoadError(format!(
                "{file}: module {expected} needs ABI {}.{}, newer than this evid's {EVI_ABI_MAJOR}.{EVI_ABI_MINOR}; upgrade evid or build the module against an older evi-sdk",
                h.abi_major, h.abi_minor
            )));
        }
        // A module of an older minor carries that minor's layout, which the host knows.
        let minor = h.abi_minor as usize;
        let (want_hash, want_size) = (LAYOUT_HASHES[minor], DECL_SIZES[minor] as u32);
        if h.layout_hash != want_hash || h.decl_size != want_size {
            // SAFETY: the type table is part of the frozen header.
            let differing = unsafe { differing_types(h.type_hashes, h.n_type_hashes as usize) };
            return Err(LoadError(format!(
                "{file}: module {expected} declares ABI {}.{} but its layout of {} differs from that version's (declaration size {} vs {want_size}); rebuild the module against this evid's evi-sdk",
                h.abi_major,
                h.abi_minor,
                if differing.is_empty() { "EviModuleDecl".to_string() } else { differing.join(", ") },
                h.decl_size
            )));
        }
        // SAFETY: magic, version and the version's layout match. Fields a later minor appended
        // to the declaration would be read only after checking `decl_size` (none so far).
        if let Err(why) = unsafe { check_transport_table(&*decl).and_then(|()| check_ext(&*decl)) }
        {
            return Err(LoadError(format!("{file}: module {expected}: {why}")));
        }
        // SAFETY: magic, version and layout all match: the declaration is an EviModuleDecl.
        let d = unsafe { &*decl };
        let name = unsafe { str_of(d.name) };
        if name != expected {
            return Err(LoadError(format!(
                "{file}: module declares the name {name:?} but the file is named for {expected:?}; rename the file or fix the name in export_module!"
            )));
        }
        let lib = Library {
            decl,
            lib,
            path: path.to_path_buf(),
            origin: path.to_path_buf(),
            origin_stamp: None,
            name,
        };
        lib.info()
            .validate()
            .map_err(|e| LoadError(format!("{file}: module {}: {e}", lib.name)))?;
        Ok(lib)
    }

    pub fn decl(&self) -> &EviModuleDecl {
        // SAFETY: checked in open(); valid while `lib` is loaded, i.e. while self lives.
        let _ = &self.lib;
        unsafe { &*self.decl }
    }

    /// Everything the declaration says, copied out.
    pub fn info(&self) -> ModuleInfo {
        ModuleInfo::from_decl(self.decl())
    }
}

/// The module's transport table, each entry read with the module's own stride.
///
/// # Safety
/// `d` passed [`check_transport_table`].
pub(crate) unsafe fn transport_table(d: &EviModuleDecl) -> Vec<EviTransport> {
    // SAFETY: checked by the loader.
    (0..d.n_transports)
        .map(|i| unsafe { EviTransport::read(d.transports, i) })
        .collect()
}

/// Most arguments a module's script function may declare.
pub const MAX_SCRIPT_ARGS: usize = 16;

/// The module's script functions: empty before ABI 1.2, or when it exports none.
///
/// # Safety
/// `d` passed [`check_ext`].
pub(crate) unsafe fn script_fn_table(d: &EviModuleDecl) -> &[evi_abi::EviScriptFn] {
    if d.header.0.abi_minor < 2 || d.ext.is_null() {
        return &[];
    }
    // SAFETY: checked by check_ext.
    let ext = unsafe { &*d.ext };
    unsafe { slice(ext.script_fns, ext.n_script_fns) }
}

/// The 1.2 extension table, when present, covers at least 1.2's fields and a sane table.
///
/// # Safety
/// `d` is a declaration whose layout was checked.
unsafe fn check_ext(d: &EviModuleDecl) -> Result<(), String> {
    if d.header.0.abi_minor < 2 || d.ext.is_null() {
        return Ok(());
    }
    // SAFETY: a 1.2 declaration's ext points at an EviModuleExt starting with its size.
    let size = unsafe { (*d.ext).size };
    if size < std::mem::size_of::<evi_abi::EviModuleExt>() {
        return Err(format!(
            "extension table of {size} bytes, smaller than ABI 1.2's"
        ));
    }
    let ext = unsafe { &*d.ext };
    if ext.n_script_fns > 64 || (ext.n_script_fns > 0 && ext.script_fns.is_null()) {
        return Err(format!(
            "script function table of {} entries at {:p}",
            ext.n_script_fns, ext.script_fns
        ));
    }
    Ok(())
}

/// Every entry of the transport table must have the same `size`, at least ABI 1.0's.
///
/// # Safety
/// `d` is a declaration whose layout was checked.
unsafe fn check_transport_table(d: &EviModuleDecl) -> Result<(), String> {
    if d.n_transports == 0 {
        return Ok(());
    }
    if d.transports.is_null() || d.n_transports > 64 {
        return Err(format!(
            "bad transport table ({} entries at {:p})",
            d.n_transports, d.transports
        ));
    }
    // SAFETY: `size` is the first field of every minor's EviTransport.
    let size = unsafe { *(d.transports as *const usize) };
    if size < EVI_TRANSPORT_SIZE_1_0 || size % std::mem::align_of::<EviTransport>() != 0 {
        return Err(format!(
            "transport table entries are {size} bytes, not an EviTransport of any ABI 1.x"
        ));
    }
    for i in 1..d.n_transports {
        // SAFETY: entries are `size` bytes apart, n_transports of them.
        let s = unsafe { *((d.transports as *const u8).add(i * size) as *const usize) };
        if s != size {
            return Err(format!(
                "transport table entry {i} is {s} bytes, entry 0 is {size}"
            ));
        }
    }
    Ok(())
}

/// Names of ABI types whose hash in the module's table differs from the host's.
unsafe fn differing_types(table: *const evi_abi::EviTypeHash, n: usize) -> Vec<String> {
    if table.is_null() || n > 1024 {
        return Vec::new();
    }
    let theirs = unsafe { std::slice::from_raw_parts(table, n) };
    let mut out = Vec::new();
    for ours in evi_abi::TYPE_HASHES {
        let name = unsafe { str_of(ours.name) };
        match theirs.iter().find(|t| unsafe { str_of(t.name) } == name) {
            Some(t) if t.hash == ours.hash => {}
            _ => out.push(name),
        }
    }
    out
}

/// # Safety
/// `s` must point to valid bytes for the library's lifetime.
pub(crate) unsafe fn str_of(s: EviStr) -> String {
    String::from_utf8_lossy(unsafe { s.as_bytes() }).into_owned()
}

unsafe fn slice<'a, T>(p: *const T, n: usize) -> &'a [T] {
    if p.is_null() || n == 0 {
        &[]
    } else {
        unsafe { std::slice::from_raw_parts(p, n) }
    }
}

/// A modparam as declared.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamInfo {
    pub name: String,
    pub kind: ParamKind,
    pub repeatable: bool,
    pub default: Option<ParamDefault>,
    pub min: i64,
    pub max: i64,
    pub doc: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamKind {
    Int,
    Str,
    Bool,
}

impl fmt::Display for ParamKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ParamKind::Int => "int",
            ParamKind::Str => "str",
            ParamKind::Bool => "bool",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamDefault {
    Int(i64),
    Str(String),
}

impl fmt::Display for ParamDefault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamDefault::Int(i) => write!(f, "{i}"),
            ParamDefault::Str(s) => write!(f, "{s:?}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct MiCmdInfo {
    pub name: String,
    pub doc: String,
    pub recipes: Vec<Vec<String>>,
}

/// A script function a module exports (ABI 1.2).
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionInfo {
    pub name: String,
    pub doc: String,
    pub min_args: usize,
    pub max_args: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TransportInfo {
    pub proto: String,
    pub flags: u32,
}

/// A module's declaration in owned form (for `--describe-module`, checks and the registry).
#[derive(Debug, Clone, PartialEq)]
pub struct ModuleInfo {
    pub name: String,
    pub version: String,
    pub build: String,
    pub doc: String,
    pub abi: (u32, u32),
    pub params: Vec<ParamInfo>,
    pub mi_cmds: Vec<MiCmdInfo>,
    pub events: Vec<String>,
    pub transports: Vec<TransportInfo>,
    pub functions: Vec<FunctionInfo>,
}

impl ModuleInfo {
    fn from_decl(d: &EviModuleDecl) -> ModuleInfo {
        // SAFETY: all pointers in a checked declaration are static data of the library.
        unsafe {
            ModuleInfo {
                name: str_of(d.name),
                version: str_of(d.version),
                build: str_of(d.build),
                doc: str_of(d.doc),
                abi: (d.header.0.abi_major, d.header.0.abi_minor),
                params: slice(d.params, d.n_params)
                    .iter()
                    .map(|p| ParamInfo {
                        name: str_of(p.name),
                        kind: match p.kind {
                            EVI_PARAM_INT => ParamKind::Int,
                            EVI_PARAM_BOOL => ParamKind::Bool,
                            _ => ParamKind::Str,
                        },
                        repeatable: p.flags & EVI_PARAM_REPEATABLE != 0,
                        default: match p.default.kind {
                            EVI_VALUE_STR => Some(ParamDefault::Str(str_of(p.default.str))),
                            EVI_VALUE_INT | evi_abi::EVI_VALUE_BOOL => {
                                Some(ParamDefault::Int(p.default.int))
                            }
                            _ => None,
                        },
                        min: p.min,
                        max: p.max,
                        doc: str_of(p.doc),
                    })
                    .collect(),
                mi_cmds: slice(d.mi_cmds, d.n_mi_cmds)
                    .iter()
                    .map(|c| MiCmdInfo {
                        name: str_of(c.name),
                        doc: str_of(c.doc),
                        recipes: slice(c.recipes, c.n_recipes)
                            .iter()
                            .map(|r| {
                                slice(r.params, r.n_params)
                                    .iter()
                                    .map(|s| str_of(*s))
                                    .collect()
                            })
                            .collect(),
                    })
                    .collect(),
                events: slice(d.events, d.n_events)
                    .iter()
                    .map(|s| str_of(*s))
                    .collect(),
                transports: transport_table(d)
                    .iter()
                    .map(|t| TransportInfo {
                        proto: str_of(t.proto),
                        flags: t.flags,
                    })
                    .collect(),
                functions: script_fn_table(d)
                    .iter()
                    .map(|f| FunctionInfo {
                        name: str_of(f.name),
                        doc: str_of(f.doc),
                        min_args: f.min_args as usize,
                        max_args: f.max_args as usize,
                    })
                    .collect(),
            }
        }
    }

    /// Declaration sanity: things a module author can get wrong that the types cannot catch.
    fn validate(&self) -> Result<(), String> {
        for (i, p) in self.params.iter().enumerate() {
            if self.params[..i].iter().any(|q| q.name == p.name) {
                return Err(format!("param {} is declared twice", p.name));
            }
            if p.kind == ParamKind::Int {
                if let Some(ParamDefault::Int(d)) = p.default {
                    if d < p.min || d > p.max {
                        return Err(format!(
                            "param {}: default {d} is outside its range {}..{}",
                            p.name, p.min, p.max
                        ));
                    }
                }
            }
        }
        for (i, f) in self.functions.iter().enumerate() {
            let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
            if f.name.is_empty() || !f.name.chars().all(ident) {
                return Err(format!("script function {:?} is not a valid name", f.name));
            }
            if self.functions[..i].iter().any(|g| g.name == f.name) {
                return Err(format!("script function {} is declared twice", f.name));
            }
            if f.min_args > f.max_args || f.max_args > MAX_SCRIPT_ARGS {
                return Err(format!(
                    "script function {}: argument range {}..={} (at most {MAX_SCRIPT_ARGS})",
                    f.name, f.min_args, f.max_args
                ));
            }
        }
        for t in &self.transports {
            if t.proto.is_empty() || t.proto.contains(':') {
                return Err(format!(
                    "transport proto {:?} is not a valid proto name",
                    t.proto
                ));
            }
        }
        Ok(())
    }

    /// Human description, as printed by `evid --describe-module`.
    pub fn describe(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(s, "module:    {}", self.name);
        let _ = writeln!(s, "version:   {} ({})", self.version, self.build);
        let _ = writeln!(s, "abi:       {}.{}", self.abi.0, self.abi.1);
        if !self.doc.is_empty() {
            let _ = writeln!(s, "about:     {}", self.doc);
        }
        if !self.transports.is_empty() {
            let protos: Vec<_> = self
                .transports
                .iter()
                .map(|t| format!("{}:", t.proto))
                .collect();
            let _ = writeln!(s, "protos:    {}", protos.join(" "));
        }
        if !self.events.is_empty() {
            let _ = writeln!(s, "events:    {}", self.events.join(" "));
        }
        let _ = writeln!(s, "params:");
        if self.params.is_empty() {
            let _ = writeln!(s, "  (none)");
        }
        for p in &self.params {
            let default = p
                .default
                .as_ref()
                .map_or("unset".to_string(), |d| d.to_string());
            let range = if p.kind == ParamKind::Int {
                format!(" range {}..={}", p.min, p.max)
            } else {
                String::new()
            };
            let rep = if p.repeatable { " repeatable" } else { "" };
            let _ = writeln!(
                s,
                "  {} ({}{rep}) default {default}{range}: {}",
                p.name, p.kind, p.doc
            );
        }
        if !self.functions.is_empty() {
            let _ = writeln!(s, "script functions:");
            for f in &self.functions {
                let _ = writeln!(
                    s,
                    "  {}({}..={} args): {}",
                    f.name, f.min_args, f.max_args, f.doc
                );
            }
        }
        let _ = writeln!(s, "mi commands:");
        if self.mi_cmds.is_empty() {
            let _ = writeln!(s, "  (none)");
        }
        for c in &self.mi_cmds {
            let recipes: Vec<_> = c
                .recipes
                .iter()
                .map(|r| format!("[{}]", r.join(", ")))
                .collect();
            let _ = writeln!(s, "  {} {}: {}", c.name, recipes.join(" "), c.doc);
        }
        s
    }
}
