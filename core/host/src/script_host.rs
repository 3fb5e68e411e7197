//! The script functions the host provides (checked at `evid -c` time).

use evi_script::FunctionSpec;

pub fn functions() -> Vec<FunctionSpec> {
    evi_script::builtin_functions()
}
