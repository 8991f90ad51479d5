// RPC: promise-pipelined calls over HTTP on Cap'n Web's batch protocol, limited to an allow-list (docs/rpc.md).
export { RPC, RPCBuilder, RPC_PIPELINE_PATH, MAX_RPC_BATCH_BYTES, type RpcCallContext, type RpcMethod } from './rpc.js'
