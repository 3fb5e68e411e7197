//! `#[derive(AbiLayout)]`: a `const` layout hash for every `#[repr(C)]` type of the evid ABI.
//!
//! The hash covers the type's name, size and alignment, and for each field its name, offset and
//! the field type's own hash (so nested structs, pointers and fn-pointer signatures count). A
//! module carries the hashes it was built with; the host compares them with its own before it
//! runs any module code, and names the type that differs.

use proc_macro::TokenStream;
use quote::quote;
use syn::{parse_macro_input, Data, DeriveInput, Fields};

#[proc_macro_derive(AbiLayout)]
pub fn derive_abi_layout(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    let name = &input.ident;
    let name_str = name.to_string();

    let is_repr_c = input.attrs.iter().any(|a| {
        a.path().is_ident("repr")
            && a.parse_nested_meta(|m| {
                if m.path.is_ident("C") || m.path.is_ident("transparent") {
                    Ok(())
                } else {
                    Err(m.error("not C"))
                }
            })
            .is_ok()
    });
    if !is_repr_c {
        return syn::Error::new_spanned(name, "AbiLayout needs #[repr(C)] or #[repr(transparent)]")
            .to_compile_error()
            .into();
    }
    if !input.generics.params.is_empty() {
        return syn::Error::new_spanned(&input.generics, "AbiLayout types cannot be generic")
            .to_compile_error()
            .into();
    }
    let fields = match &input.data {
        Data::Struct(s) => match &s.fields {
            Fields::Named(f) => f.named.iter().collect::<Vec<_>>(),
            Fields::Unnamed(f) => f.unnamed.iter().collect::<Vec<_>>(),
            Fields::Unit => Vec::new(),
        },
        _ => {
            return syn::Error::new_spanned(name, "AbiLayout supports structs only")
                .to_compile_error()
                .into()
        }
    };

    let steps = fields.iter().enumerate().map(|(i, f)| {
        let ty = &f.ty;
        let (label, member) = match &f.ident {
            Some(id) => (id.to_string(), quote!(#id)),
            None => {
                let idx = syn::Index::from(i);
                (i.to_string(), quote!(#idx))
            }
        };
        quote! {
            h = h.str(#label)
                .u64(::core::mem::offset_of!(#name, #member) as u64)
                .u64(<#ty as ::evi_abi::layout::AbiLayout>::LAYOUT_HASH);
        }
    });

    quote! {
        // SAFETY: the impl is derived from the type's own fields; the hash is what the
        // trait promises: name, size, alignment and every field's name, offset and type hash.
        unsafe impl ::evi_abi::layout::AbiLayout for #name {
            const TYPE_NAME: &'static str = #name_str;
            const LAYOUT_HASH: u64 = {
                let mut h = ::evi_abi::layout::Fnv::new()
                    .str(#name_str)
                    .u64(::core::mem::size_of::<#name>() as u64)
                    .u64(::core::mem::align_of::<#name>() as u64);
                #(#steps)*
                h.finish()
            };
        }
    }
    .into()
}
