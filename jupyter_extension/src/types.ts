/**
 * Payload shapes of the Juno state API (see the dashboard contract).
 *
 * Only the fields the UI reads are typed strictly; the server may send more.
 */

export interface UsedTotal {
  used: number;
  total: number;
}

export interface ObjectStoreUsage extends UsedTotal {
  spilled: number;
  num_objects: number;
}

export interface Summary {
  address: string;
  time: number;
  version: string;
  nodes: { alive: number; dead: number };
  resources: Record<string, UsedTotal>;
  object_store: ObjectStoreUsage;
  tasks: {
    by_state: Record<string, number>;
    finished_total: number;
    failed_total: number;
  };
  actors: { by_state: Record<string, number> };
  placement_groups: { by_state: Record<string, number> };
  jobs: { running: number; finished: number };
}

export interface NodeInfo {
  node_id: string;
  alive: boolean;
  state: 'ALIVE' | 'DEAD' | string;
  death_reason: string | null;
  is_head: boolean;
  ip: string;
  hostname: string;
  address: string;
  pid: number;
  start_time: number;
  resources: Record<string, UsedTotal>;
  gpu_ids: number[];
  object_store: ObjectStoreUsage;
}

export interface NodesPayload {
  nodes: NodeInfo[];
}

export interface TaskInfo {
  task_id: string;
  name: string;
  func_or_class_name: string;
  state: string;
  type: string;
  job_id: string;
  actor_id: string | null;
  node_id: string | null;
  worker_id: string | null;
  worker_pid: number | null;
  attempt_number: number;
  creation_time: number | null;
  start_time: number | null;
  end_time: number | null;
  error_type: string | null;
  error_message: string | null;
}

export interface TasksPayload {
  by_state: Record<string, number>;
  by_function: { name: string; by_state: Record<string, number>; total: number }[];
  finished_total: number;
  failed_total: number;
  running: TaskInfo[];
  failed: TaskInfo[];
}

export interface ActorInfo {
  actor_id: string;
  class_name: string;
  name: string | null;
  namespace: string | null;
  state: string;
  num_restarts: number;
  max_restarts: number;
  node_id: string | null;
  pid: number | null;
  job_id: string | null;
  is_detached: boolean;
  death_cause: string | null;
  required_resources: Record<string, number>;
}

export interface ActorsPayload {
  actors: ActorInfo[];
}

export interface PlacementGroupInfo {
  placement_group_id: string;
  name: string;
  strategy: string;
  state: string;
  is_detached: boolean;
  bundles: { index: number; resources: Record<string, number>; node_id: string | null }[];
}

export interface PlacementGroupsPayload {
  placement_groups: PlacementGroupInfo[];
}

export interface JobInfo {
  job_id: string;
  status: string;
  entrypoint: string;
  pid: number;
  namespace: string;
  start_time: number;
  end_time: number | null;
}

export interface JobsPayload {
  jobs: JobInfo[];
}

export interface WorkerInfo {
  worker_id: string;
  pid: number;
  node_id: string;
  is_alive: boolean;
  worker_type: string;
  actor_id: string | null;
  job_id: string | null;
  start_time: number;
  end_time: number | null;
}

export interface WorkersPayload {
  workers: WorkerInfo[];
}

export interface LogsPayload {
  source: { kind: 'actor' | 'worker'; id: string; node_id: string; pid: number; path: string };
  lines: string[];
  truncated: boolean;
}

/** `GET/PUT /juno/api/connection` (Jupyter mount only). */
export interface ConnectionInfo {
  address: string | null;
  source: string | null;
  connected: boolean;
  error: string | null;
  candidates: { address: string; source: string; kernel_id?: string }[];
}

/** A `juno.util.progress` run of a library (`GET /api/library_runs`, newest first). */
export interface LibraryRunInfo {
  run_id: string;
  kind: string;
  title: string;
  state: 'running' | 'finished' | 'failed';
  done: number;
  failed: number;
  total: number | null;
  unit: string;
  rate: number | null;
  elapsed_s: number;
  start_time: number;
  end_time: number | null;
  job_id: string;
  error: string | null;
  columns: string[];
  rows: unknown[][];
  rows_dropped: number;
  fields: Record<string, unknown>;
  series_last: Record<string, number>;
}

export interface LibraryRunsPayload {
  runs: LibraryRunInfo[];
}

/** The keys an `update` message may carry, each the payload of its GET route. */
export interface UpdateData {
  summary?: Summary;
  nodes?: NodesPayload;
  tasks?: TasksPayload;
  actors?: ActorsPayload;
  placement_groups?: PlacementGroupsPayload;
  jobs?: JobsPayload;
  library_runs?: LibraryRunsPayload;
}

export type UpdateKey = keyof UpdateData;

export const UPDATE_KEYS: readonly UpdateKey[] = [
  'summary',
  'nodes',
  'tasks',
  'actors',
  'placement_groups',
  'jobs',
  'library_runs'
];

export interface ClusterEvent {
  time: number;
  kind: string;
  message: string;
  [id: string]: unknown;
}

/** Server -> client websocket messages. */
export type ServerMessage =
  | { type: 'hello'; address: string; interval: number }
  | { type: 'update'; seq: number; time: number; data: UpdateData }
  | { type: 'event'; event: ClusterEvent }
  | { type: 'error'; error: string }
  | { type: 'pong' };
