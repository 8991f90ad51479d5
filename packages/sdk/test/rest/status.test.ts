import { describe, expect, it } from 'vitest'
import { REST } from '@onepipe/sdk'
import { z } from 'zod'

describe('a route declares its success status', () => {
  const api = REST.create('things')
    .basePath('/things')
    .post('/', { body: z.object({ name: z.string() }), status: 201 }, async (ctx) => ({ created: (await ctx.body()).name }))
    .post('/jobs', { status: 202 }, () => ({ queued: true }))
    .get('/:id', (ctx) => ({ id: ctx.params.id }))
    .build()

  it('sends a returned value with that status, and 200 by default', async () => {
    const created = await api.request('/things', { method: 'POST', body: '{"name":"a"}', headers: { 'content-type': 'application/json' } })
    expect(created.status).toBe(201)
    expect(await created.json()).toEqual({ created: 'a' })
    expect((await api.request('/things/jobs', { method: 'POST' })).status).toBe(202)
    expect((await api.request('/things/7')).status).toBe(200)
  })

  it('documents that status in OpenAPI, with the errors each route can answer', () => {
    const doc = api.openapiDocument() as { paths: Record<string, Record<string, { responses: Record<string, unknown> }>> }
    const post = doc.paths['/things']?.post?.responses ?? {}
    expect(Object.keys(post).sort()).toEqual(['201', '400', '413', '415', '500'])
    expect(Object.keys(doc.paths['/things/jobs']?.post?.responses ?? {})).toContain('202')
    const get = doc.paths['/things/{id}']?.get?.responses ?? {}
    expect(Object.keys(get).sort()).toEqual(['200', '400', '404', '500'])
  })
})
