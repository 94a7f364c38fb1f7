// Package orderedjson reads and writes JSON documents whose objects keep
// the order of their keys, so that a settings file that setup edits
// differs from the user's only where setup changed it.
//
// [Parse] decodes objects as [*Object], arrays as []any and numbers as
// json.Number (no precision is lost); [Encode] writes them back with
// two-space indentation and a final newline.
package orderedjson
