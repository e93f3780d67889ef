// Small pieces the screens share: a person's avatar and name, times, error and status
// lines, and an image picker that uploads as soon as a file is chosen.

import { useState } from 'preact/hooks';
import { describe, uploadImage, type Media } from './api';
import { usePerson } from './store';

export function Avatar({ url, name, size = 32 }: { url?: string | null; name: string; size?: number }) {
  const style = { width: `${size}px`, height: `${size}px` };
  if (url) return <img class="avatar" src={url} alt="" style={style} />;
  return (
    <span class="avatar initial" style={style} aria-hidden="true">
      {name.slice(0, 1).toUpperCase()}
    </span>
  );
}

/** A person by id: avatar and display name, linking to their profile. */
export function PersonLink({ id, avatar = false }: { id: string | null | undefined; avatar?: boolean }) {
  const person = usePerson(id);
  if (!id) return <span>someone</span>;
  if (!person) return <span class="muted">…</span>;
  return (
    <a class="person" href={`/u/${person.username}`}>
      {avatar && <Avatar url={person.avatarMedia?.url} name={person.name} size={24} />}
      {person.name}
    </a>
  );
}

export function Time({ at }: { at: string }) {
  const date = new Date(at);
  const today = new Date().toDateString() === date.toDateString();
  const text = today
    ? date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })
    : date.toLocaleString([], { dateStyle: 'short', timeStyle: 'short' });
  return (
    <time dateTime={at} title={date.toLocaleString()}>
      {text}
    </time>
  );
}

/**
 * A form's submit: runs `action` once at a time, with its busy flag and its error (shown by
 * `ErrorLine`); `keepBusy`: stay busy after success (the screen is about to change).
 */
export function useAction(action: () => Promise<void>, keepBusy = false) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const run = async (event?: Event) => {
    event?.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await action();
      if (!keepBusy) setBusy(false);
    } catch (failure) {
      setError(failure);
      setBusy(false);
    }
  };
  return { run, busy, error };
}

export function ErrorLine({ error }: { error: unknown }) {
  if (!error) return null;
  return (
    <p class="error" role="alert">
      {describe(error)}
    </p>
  );
}

export function Loading() {
  return (
    <p class="muted" role="status">
      Loading…
    </p>
  );
}

/** Picks images and uploads each at once; `onReady` gets the processed media. */
export function ImagePicker({ label, onReady, disabled }: { label: string; onReady: (media: Media) => void; disabled?: boolean }) {
  const [state, setState] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  const choose = async (event: Event) => {
    const input = event.currentTarget as HTMLInputElement;
    const files = [...(input.files ?? [])];
    input.value = '';
    setError(null);
    for (const file of files) {
      try {
        setState('uploading');
        onReady(await uploadImage(file, setState));
      } catch (failure) {
        setError(failure);
      }
    }
    setState(null);
  };
  return (
    <span class="picker">
      <label class="button secondary">
        {label}
        <input type="file" accept="image/jpeg,image/png,image/webp,image/gif" class="visually-hidden" onChange={choose} disabled={disabled || state !== null} />
      </label>
      {state && (
        <span class="muted" role="status">
          {state === 'uploading' ? 'Uploading…' : 'Processing…'}
        </span>
      )}
      <ErrorLine error={error} />
    </span>
  );
}
