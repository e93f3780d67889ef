// girok's API as the app uses it: GraphQL over POST /graphql with the session cookie (sent by
// the browser; the app never sees a token) and the CSRF token girok keeps in a readable cookie,
// and the one-step media upload. Every failure becomes an ApiError with girok's stable code.

export class ApiError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly retryAfter?: number,
  ) {
    super(message);
  }
}

/** The double-submit CSRF token: the `girok_csrf` cookie, echoed in `X-CSRF-Token`. */
function csrf(): string {
  const found = document.cookie.split('; ').find((pair) => pair.startsWith('girok_csrf='));
  return found ? decodeURIComponent(found.slice('girok_csrf='.length)) : '';
}

async function request(path: string, init: RequestInit): Promise<Response> {
  const headers = new Headers(init.headers);
  headers.set('X-CSRF-Token', csrf());
  try {
    return await fetch(path, { ...init, headers, credentials: 'same-origin' });
  } catch {
    throw new ApiError('OFFLINE', 'girok cannot be reached; check your connection');
  }
}

type GraphQLError = { message: string; extensions?: { code?: string; retryAfter?: number } };

/** One GraphQL operation; its data, or the first error as an ApiError. */
export async function gql<T>(query: string, variables: Record<string, unknown> = {}): Promise<T> {
  const response = await request('/graphql', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ query, variables }),
  });
  let body: { data?: T; errors?: GraphQLError[]; error?: { code: string; message: string } };
  try {
    body = await response.json();
  } catch {
    throw new ApiError('BAD_RESPONSE', `girok answered ${response.status} without JSON`);
  }
  const error = body.errors?.[0];
  if (error) {
    throw new ApiError(error.extensions?.code ?? 'ERROR', error.message, error.extensions?.retryAfter);
  }
  if (body.error) throw new ApiError(body.error.code, body.error.message);
  if (!response.ok || body.data === undefined) {
    throw new ApiError('BAD_RESPONSE', `girok answered ${response.status}`);
  }
  return body.data;
}

export type Media = {
  id: string;
  state: string;
  width?: number | null;
  height?: number | null;
  rejectedReason?: string | null;
  variants: { name: string; url: string; width: number; height: number }[];
};

/** Uploads an image and waits until girok has processed it (ready, or an error). */
export async function uploadImage(file: File, onState?: (state: string) => void): Promise<Media> {
  const response = await request('/v1/media/upload', {
    method: 'POST',
    headers: { 'Content-Type': file.type || 'application/octet-stream' },
    body: file,
  });
  const started = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw new ApiError(started.error?.code ?? 'UPLOAD_FAILED', started.error?.message ?? 'upload failed');
  }
  const deadline = Date.now() + 60_000;
  for (let wait = 100; Date.now() < deadline; wait = Math.min(wait * 2, 1000)) {
    onState?.(started.state ?? 'processing');
    await new Promise((resolve) => setTimeout(resolve, wait));
    const polled = await request(`/v1/media/${started.id}`, { method: 'GET' });
    const media: Media & { error?: { code: string; message: string } } = await polled.json();
    if (media.error) throw new ApiError(media.error.code, media.error.message);
    if (media.state === 'ready') return media;
    if (media.state === 'rejected') {
      throw new ApiError(media.rejectedReason ?? 'MEDIA_REJECTED', `the image was rejected (${media.rejectedReason})`);
    }
  }
  throw new ApiError('MEDIA_TIMEOUT', 'the image is taking too long to process');
}

/** A media object's URL in a variant (`thumb`, `small`, `large`, `full`). */
export function variantUrl(media: Media, name: string): string | undefined {
  return media.variants.find((variant) => variant.name === name)?.url ?? media.variants[0]?.url;
}

/** A fresh idempotency key for one outgoing message (kept across its retries). */
export function newClientId(): string {
  // getRandomValues, not randomUUID: the latter needs a secure context (not plain http on a LAN).
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return `web-${Array.from(bytes, (byte) => byte.toString(16).padStart(2, '0')).join('')}`;
}

/** A readable message for an error (girok's message, or the code). */
export function describe(error: unknown): string {
  if (error instanceof ApiError) return `${error.message} (${error.code})`;
  return error instanceof Error ? error.message : String(error);
}
