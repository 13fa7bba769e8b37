/* A program that links one floor's whole archive and only the floors below it
 * (tests/CMakeLists.txt): it builds only while no object of the floor calls into a
 * higher one. */
int main(void) { return 0; }
