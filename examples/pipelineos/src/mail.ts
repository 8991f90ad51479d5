import nodemailer from 'nodemailer'

/** One message to send. */
export interface OutgoingMail {
  to: string
  subject: string
  text: string
  /** Stable per message, so a receiver can recognise a repeat of a send that was retried. */
  messageId: string
  attachments: { filename: string; content: Buffer; contentType: string }[]
}

/** What a send did. */
export interface SentMail {
  messageId: string
  /** `smtp`: handed to the SMTP server; `recorded`: built in full and kept, not sent (no `SMTP_URL`). */
  transport: 'smtp' | 'recorded'
  /** The whole message (RFC 5322) when it was recorded rather than sent. */
  raw: string | null
  /** The SMTP server's answer, when sent. */
  response: string | null
}

/** Sends proposals. */
export interface Mailer {
  readonly transport: SentMail['transport']
  send(mail: OutgoingMail): Promise<SentMail>
}

/**
 * The mailer the environment asks for: SMTP at `SMTP_URL`
 * (`smtp://user:pass@host:587`, `smtps://…`), else nodemailer's stream
 * transport, which builds the complete message and hands it back to be
 * recorded instead of sent. The sender is `MAIL_FROM`.
 *
 * @example
 * ```ts
 * const mailer = createMailer(process.env)
 * const sent = await mailer.send({ to, subject, text, messageId, attachments })
 * ```
 */
export function createMailer(env: Record<string, string | undefined>): Mailer {
  const from = env.MAIL_FROM ?? 'PipelineOS <bids@pipelineos.localhost>'
  const smtp = env.SMTP_URL
  const transporter = smtp ? nodemailer.createTransport(smtp) : nodemailer.createTransport({ streamTransport: true, buffer: true, newline: 'unix' })
  const transport: SentMail['transport'] = smtp ? 'smtp' : 'recorded'
  return {
    transport,
    async send(mail) {
      const info = (await transporter.sendMail({ from, to: mail.to, subject: mail.subject, text: mail.text, messageId: mail.messageId, attachments: mail.attachments })) as {
        messageId?: string
        message?: Buffer | string
        response?: string
      }
      const raw = info.message === undefined ? null : Buffer.isBuffer(info.message) ? info.message.toString('utf8') : String(info.message)
      return { messageId: info.messageId ?? mail.messageId, transport, raw: transport === 'recorded' ? raw : null, response: info.response ?? null }
    },
  }
}
