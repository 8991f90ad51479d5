import { crc32 } from 'node:zlib'

/**
 * The on-disk frame of the file store's logs:
 *
 * ```
 * u32 BE payload length | u32 BE crc32(type byte + payload) | u8 type | payload
 * ```
 *
 * A log is `HEADER (DATA* COMMIT)*`. DATA frames only count once a COMMIT
 * follows them, so one transaction batch (data + its meta change) is
 * atomic: recovery keeps everything up to the last valid COMMIT and cuts
 * the rest (a torn or corrupt tail is simply an uncommitted batch).
 */
export const FRAME_HEADER = 9

export const FrameType = {
  /** First frame: `{ v, path, base }` JSON (base = offset of the first record). */
  Header: 1,
  /** One record: u32 BE message count + the payload bytes. */
  Data: 2,
  /** Ends a batch: the stream meta as JSON, or empty when unchanged since the last COMMIT. */
  Commit: 3,
} as const
export type FrameType = (typeof FrameType)[keyof typeof FrameType]

const TYPE_BYTES = [new Uint8Array([0]), new Uint8Array([1]), new Uint8Array([2]), new Uint8Array([3])]

function checksum(type: number, payload: Uint8Array): number {
  return crc32(payload, crc32(TYPE_BYTES[type] ?? new Uint8Array([type])))
}

/** Frame header bytes for a payload that follows as separate buffer(s). */
function header(type: FrameType, length: number, crc: number): Buffer {
  const h = Buffer.allocUnsafe(FRAME_HEADER)
  h.writeUInt32BE(length, 0)
  h.writeUInt32BE(crc, 4)
  h.writeUInt8(type, 8)
  return h
}

/** Buffers of one DATA frame (header+count, payload): written with writev, no copy of the payload. */
export function dataFrame(data: Uint8Array, count: number): [Buffer, Uint8Array] {
  const countBytes = Buffer.allocUnsafe(4)
  countBytes.writeUInt32BE(count, 0)
  const crc = crc32(data, crc32(countBytes, crc32(TYPE_BYTES[FrameType.Data] as Uint8Array)))
  const h = header(FrameType.Data, 4 + data.byteLength, crc)
  return [Buffer.concat([h, countBytes]), data]
}

/** One frame whose payload is a (possibly empty) UTF-8 text. */
export function textFrame(type: FrameType, text: string): Buffer {
  const payload = Buffer.from(text, 'utf8')
  return Buffer.concat([header(type, payload.byteLength, checksum(type, payload)), payload])
}

/** A frame parsed from a buffer. */
export interface Frame {
  type: FrameType
  /** Position of the frame's first byte, relative to the parsed buffer. */
  start: number
  /** Position right after the frame. */
  end: number
  payload: Buffer
}

/**
 * Parses the frame at `pos` of `buf`. Returns `'short'` when the buffer ends
 * inside the frame (read more, or it is a torn tail) and `'bad'` when the
 * frame is corrupt (checksum or type).
 */
export function parseFrame(buf: Buffer, pos: number): Frame | 'short' | 'bad' {
  if (buf.byteLength - pos < FRAME_HEADER) return 'short'
  const length = buf.readUInt32BE(pos)
  const crc = buf.readUInt32BE(pos + 4)
  const type = buf.readUInt8(pos + 8)
  if (type < FrameType.Header || type > FrameType.Commit) return 'bad'
  const end = pos + FRAME_HEADER + length
  if (end > buf.byteLength) return 'short'
  const payload = buf.subarray(pos + FRAME_HEADER, end)
  if (checksum(type, payload) !== crc) return 'bad'
  return { type: type as FrameType, start: pos, end, payload }
}

/** The message count and bytes of a DATA frame's payload. */
export function dataOf(payload: Buffer): { count: number; data: Uint8Array } {
  return { count: payload.readUInt32BE(0), data: payload.subarray(4) }
}
