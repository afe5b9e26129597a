/*
 * ponder native plugin ABI, version 1.
 *
 * A native plugin is a shared library implementing one ponder plugin role (thought template,
 * judge or pair selector) with the functions below. It is the native counterpart of the
 * WebAssembly worlds of ponder:plugin@0.1.0 and carries the same values, encoded as JSON.
 *
 * TRUST: a native plugin runs inside the ponder process with the full rights of that process.
 * It can read and write any file the user can, use the network, read the environment, and crash
 * or corrupt the host. No sandbox applies: no memory cap, no fuel, no deadline, no capability
 * grants (native plugins get no model access). ponder loads a native library only where the
 * manifest says so explicitly:
 *
 *     [plugins.selector]
 *     native = "path/to/libmy_selector.so"
 *     trust = "native"
 *
 * Rust authors do not write this by hand: ponder_sdk::export_native_thought_template!,
 * export_native_judge! and export_native_pair_selector! generate it from the SDK traits.
 *
 * CALLING CONVENTION (every JSON function):
 *
 *     int32_t f(const uint8_t *input, size_t input_len, uint8_t **output, size_t *output_len);
 *
 *   input      UTF-8 JSON, not NUL-terminated, owned by the host, valid for the call only.
 *   output     set by the plugin to a buffer it allocated (or NULL with *output_len = 0).
 *              The host copies it and then calls ponder_plugin_free(*output, *output_len)
 *              exactly once. The plugin must not free it itself.
 *   returns    PONDER_STATUS_OK            output is the result JSON;
 *              PONDER_STATUS_PLUGIN_ERROR  output is a plugin error JSON:
 *                                          {"kind": "invalid-config" | "invalid-input" | "failed",
 *                                           "message": "..."}
 *              PONDER_STATUS_ABI_ERROR     (or any other value) output is a UTF-8 message, e.g.
 *                                          a caught panic or undecodable input.
 *
 * The host calls ponder_plugin_configure once, right after loading, before any other call, and
 * calls a plugin from one thread at a time. The functions must not unwind across the ABI.
 *
 * JSON SHAPES (the contract's types of ponder-contract, re-exported by ponder-sdk, serialised
 * with serde):
 *
 *   message     {"role": "user", "content": "..."}
 *   configure   in:  the plugin's manifest `config` table as a JSON object ({} when absent)
 *               out: null
 *   render      in:  [message, ...] (the instruction)      out: [message, ...]
 *   parse       in:  "the generated output"                  out: {"ok": {"thought": "...",
 *                                                                 "response": "..."}}
 *                                                             or {"failure": "why"}
 *               (native templates have no output format: the host uses the default, no
 *               assistant prefix and no response separator)
 *   judge       in:  [{"instruction": [message, ...], "responses": ["...", ...],
 *                      "reference": "..." | null, "metadata": "<JSON text>"}, ...]
 *               out: per request {"scores": [number | null, ...]} (one per response, finite)
 *                    or {"error": {"kind": "...", "message": "..."}}
 *   select      in:  [[candidate, ...], ...] (one list per instruction), candidate =
 *                    {"score": number | null, "parsed": bool, "response_tokens": n,
 *                     "response_chars": n, "thought_tokens": n, "thought_chars": n,
 *                     "output_tokens": n}
 *               out: [[{"chosen": i, "rejected": j, "weight": w}, ...], ...] (same length as
 *                    the input; i != j, both < the group's size; w positive and finite)
 *
 * The host checks ABI version and role at load, and checks every result as it checks a
 * component's (score counts, finite scores, pair indices and weights).
 */
#ifndef PONDER_PLUGIN_H
#define PONDER_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** The ABI version this header describes. */
#define PONDER_PLUGIN_ABI_VERSION 1u

/** Roles, as returned by ponder_plugin_role. */
#define PONDER_ROLE_TEMPLATE 0u
#define PONDER_ROLE_JUDGE 1u
#define PONDER_ROLE_SELECTOR 2u

/** Call statuses. */
#define PONDER_STATUS_OK 0
#define PONDER_STATUS_PLUGIN_ERROR 1
#define PONDER_STATUS_ABI_ERROR 2

/** Returns PONDER_PLUGIN_ABI_VERSION; the host refuses any other value. Required. */
uint32_t ponder_plugin_abi_version(void);

/** Returns the plugin's role (PONDER_ROLE_*); the host refuses a role other than the manifest
 *  table's. Required. */
uint32_t ponder_plugin_role(void);

/** Frees a buffer this library returned through an `output` pointer. Required. */
void ponder_plugin_free(uint8_t *ptr, size_t len);

/** Receives the configuration. Required. */
int32_t ponder_plugin_configure(const uint8_t *input, size_t input_len, uint8_t **output,
                                size_t *output_len);

/** Thought templates: wraps an instruction in the thought prompt. */
int32_t ponder_plugin_render(const uint8_t *input, size_t input_len, uint8_t **output,
                             size_t *output_len);

/** Thought templates: splits an output into thought and response. */
int32_t ponder_plugin_parse(const uint8_t *input, size_t input_len, uint8_t **output,
                            size_t *output_len);

/** Judges: scores the responses of each request. */
int32_t ponder_plugin_judge(const uint8_t *input, size_t input_len, uint8_t **output,
                            size_t *output_len);

/** Pair selectors: turns scored candidates into preference pairs. */
int32_t ponder_plugin_select(const uint8_t *input, size_t input_len, uint8_t **output,
                             size_t *output_len);

#ifdef __cplusplus
}
#endif

#endif /* PONDER_PLUGIN_H */
