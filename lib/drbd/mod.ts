/**
 * The DRBD edge of ha-controller: running drbdsetup, parsing what it prints,
 * and keeping the typed model current.
 *
 * @module
 */

export * from "./model.ts";
export {
  type Events2Applied,
  type Events2Dump,
  type Events2Error,
  type Events2Line,
  type Events2Object,
  Events2State,
  type Events2Verb,
  parseEvents2Dump,
  parseEvents2Line,
} from "./events2.ts";
export {
  DEFAULT_RESOURCE_CONFIG,
  DrbdParseError,
  parseQuorumPolicy,
  parseShowJson,
} from "./show_json.ts";
export {
  DrbdsetupError,
  type DrbdsetupErrorDetails,
  type DrbdsetupExit,
  type DrbdsetupFailure,
  type DrbdsetupProcess,
  type DrbdsetupResult,
  EXIT_GENERIC,
  EXIT_MODULE_UNLOADED,
  EXIT_NOT_FOUND,
  forceSecondary,
  type ForceSecondaryOptions,
  type ForceSecondaryOutcome,
  runDrbdsetup,
  runDrbdsetupChecked,
  type RunDrbdsetupOptions,
  saysModuleMissing,
  spawnDrbdsetup,
  type SpawnDrbdsetupOptions,
} from "./run.ts";
export {
  DrbdSampler,
  type DrbdSamplerOptions,
  EVENTS2_NOW_ARGS,
  EVENTS2_STREAM_ARGS,
  NOT_LOADED_MESSAGE,
  sampleOnce,
  type SampleOnceOptions,
  SHOW_ARGS,
} from "./sampler.ts";
