export { createSession, Session } from "./session";
export type { SessionEvents, SessionOptions, State } from "./session";
export { attachAxios } from "./axios";
export type { AxiosLike } from "./axios";
export { KEYTURN, SIMPLEJWT } from "./endpoints";
export type { Endpoints } from "./endpoints";
export { LoginError, RefreshUnavailableError, SessionEndedError } from "./errors";
export type { EndReason, ErrorCode } from "./errors";
export type { ChannelLike, LockManagerLike } from "./tabs";
