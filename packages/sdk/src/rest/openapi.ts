import type { StandardSchemaV1 } from '@onepipe/core'

/** The `info` of an OpenAPI document. */
export interface OpenApiInfo {
  title: string
  version: string
  description?: string
}

/** What the OpenAPI builder needs to know about one route. */
export interface RouteDoc {
  method: string
  path: string
  tag: string
  secured: boolean
  options: { body?: StandardSchemaV1 | undefined; query?: StandardSchemaV1 | undefined; params?: StandardSchemaV1 | undefined; response?: StandardSchemaV1 | undefined; status?: number; summary?: string; description?: string; tags?: string[] }
}

type JsonSchemaCapable = { '~standard': { jsonSchema?: { input(o: { target: string }): Record<string, unknown>; output(o: { target: string }): Record<string, unknown> } } }

/**
 * JSON Schema (draft 2020-12) of a Standard Schema that can describe itself
 * (Zod v4 can), else an open schema `{}`.
 *
 * @example
 * ```ts
 * jsonSchema(z.object({ sku: z.string() }), 'input') // { type: 'object', properties: { sku: { type: 'string' } }, required: ['sku'], … }
 * ```
 */
export function jsonSchema(s: StandardSchemaV1 | undefined, io: 'input' | 'output'): Record<string, unknown> {
  const conv = (s as JsonSchemaCapable | undefined)?.['~standard'].jsonSchema
  if (!conv) return {}
  try {
    const out = { ...conv[io]({ target: 'draft-2020-12' }) }
    delete out.$schema
    return out
  } catch {
    // Some schemas (transforms, custom refinements) have no JSON Schema form; document them as open.
    return {}
  }
}

/**
 * Builds an OpenAPI 3.1 document from route descriptions.
 *
 * @example
 * ```ts
 * const doc = buildOpenApi({ title: 'Shop', version: '1.0.0' }, api.routeDocs())
 * ```
 */
export function buildOpenApi(info: OpenApiInfo, routes: RouteDoc[]): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {}
  let secured = false
  for (const r of routes) {
    const oaPath = r.path.replace(/:([A-Za-z0-9_]+)(\{[^}]*\})?/g, '{$1}')
    const pathParams = [...r.path.matchAll(/:([A-Za-z0-9_]+)/g)].map((m) => ({ name: m[1], in: 'path', required: true, schema: { type: 'string' } }))
    const q = jsonSchema(r.options.query, 'input')
    const qProps = (q.properties ?? {}) as Record<string, unknown>
    const qReq = new Set((q.required ?? []) as string[])
    const queryParams = Object.entries(qProps).map(([name, schema]) => ({ name, in: 'query', required: qReq.has(name), schema }))
    const op: Record<string, unknown> = {
      operationId: `${r.tag}_${r.method.toLowerCase()}_${r.path.replace(/[^A-Za-z0-9]+/g, '_').replace(/^_|_$/g, '')}`,
      tags: r.options.tags ?? [r.tag],
      ...(r.options.summary ? { summary: r.options.summary } : {}),
      ...(r.options.description ? { description: r.options.description } : {}),
      parameters: [...pathParams, ...queryParams],
      responses: {
        [String(r.options.status ?? 200)]: { description: 'Success', content: { 'application/json': { schema: jsonSchema(r.options.response, 'output') } } },
        '400': { $ref: '#/components/responses/Error' },
        ...(r.secured ? { '401': { $ref: '#/components/responses/Error' }, '403': { $ref: '#/components/responses/Error' } } : {}),
        ...(pathParams.length > 0 ? { '404': { $ref: '#/components/responses/Error' } } : {}),
        ...(r.options.body ? { '413': { $ref: '#/components/responses/Error' }, '415': { $ref: '#/components/responses/Error' } } : {}),
        '500': { $ref: '#/components/responses/Error' },
      },
      ...(r.options.body ? { requestBody: { required: true, content: { 'application/json': { schema: jsonSchema(r.options.body, 'input') } } } } : {}),
      ...(r.secured ? { security: [{ bearer: [] }] } : {}),
    }
    if (r.secured) secured = true
    ;(paths[oaPath] ??= {})[r.method.toLowerCase()] = op
  }
  return {
    openapi: '3.1.0',
    info,
    paths,
    components: {
      ...(secured ? { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } } : {}),
      responses: {
        Error: {
          description: 'Error',
          content: {
            'application/json': {
              schema: {
                type: 'object',
                properties: { error: { type: 'object', properties: { code: { type: 'string' }, message: { type: 'string' }, details: { type: 'object' }, requestId: { type: 'string' } }, required: ['code', 'message', 'requestId'] } },
                required: ['error'],
              },
            },
          },
        },
      },
    },
  }
}
