// Small shared state: a value with subscribers, a hook to read it in components, and the
// cache of other people's public profiles (looked up by id in batches).

import { useEffect, useMemo, useState } from 'preact/hooks';
import { gql } from './api';

export class Cell<T> {
  private listeners = new Set<(value: T) => void>();
  constructor(private current: T) {}
  get value(): T {
    return this.current;
  }
  set(value: T): void {
    this.current = value;
    this.listeners.forEach((listener) => listener(value));
  }
  update(change: (value: T) => T): void {
    this.set(change(this.current));
  }
  subscribe(listener: (value: T) => void): () => void {
    this.listeners.add(listener);
    return () => void this.listeners.delete(listener);
  }
}

export function useCell<T>(cell: Cell<T>): T {
  const [value, setValue] = useState(cell.value);
  useEffect(() => {
    setValue(cell.value);
    return cell.subscribe(setValue);
  }, [cell]);
  return value;
}

export type Person = {
  id: string;
  username: string;
  name: string;
  avatarMedia?: { url: string | null } | null;
};

const people = new Map<string, Cell<Person | null>>();
const wanted = new Set<string>();
/** Ids looked up already (found or not): not asked again unless the lookup failed. */
const asked = new Set<string>();
let flushing = false;

async function flush(): Promise<void> {
  while (wanted.size) {
    const ids = [...wanted].slice(0, 100);
    ids.forEach((id) => wanted.delete(id));
    try {
      const { users } = await gql<{ users: Person[] }>(
        'query($ids: [ID!]!) { users(ids: $ids) { id username name avatarMedia { url(variant: "thumb") } } }',
        { ids },
      );
      users.forEach((user) => rememberPerson(user));
    } catch {
      // Asked again the next time a screen needs them (the cells stay: screens hold them).
      ids.forEach((id) => asked.delete(id));
    }
  }
  flushing = false;
}

export function rememberPerson(person: Person): void {
  const cell = people.get(person.id);
  if (cell) cell.set(person);
  else people.set(person.id, new Cell<Person | null>(person));
}

/** The cell of a person's public profile, asked for (batched with others) when unknown. */
export function personCell(id: string): Cell<Person | null> {
  let cell = people.get(id);
  if (!cell) {
    cell = new Cell<Person | null>(null);
    people.set(id, cell);
  }
  if (!cell.value && !asked.has(id)) {
    asked.add(id);
    wanted.add(id);
    if (!flushing) {
      flushing = true;
      queueMicrotask(() => void flush());
    }
  }
  return cell;
}

const nobody = new Cell<Person | null>(null);

export function usePerson(id: string | null | undefined): Person | null {
  const cell = useMemo(() => (id ? personCell(id) : nobody), [id]);
  return useCell(cell);
}
