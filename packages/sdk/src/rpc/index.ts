// RPC: promise-pipelined calls over HTTP (Cap'n Web's batch protocol) and WebSocket sessions with
// subscriptions, limited to an allow-list (docs/rpc.md).
export { RPC, RPCBuilder, RPC_PIPELINE_PATH, RPC_WS_PATH, MAX_RPC_BATCH_BYTES, type RpcCallContext, type RpcMethod } from './rpc.js'
export { Subscription, MAX_SUBSCRIPTIONS, type EventFlowSource } from './ws.js'
